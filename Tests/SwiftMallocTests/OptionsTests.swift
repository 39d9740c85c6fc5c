import Testing
@testable import SwiftMalloc
import CShim
#if canImport(Glibc)
import Glibc
#endif

@Suite struct OptionsTests {
  func parse(_ s: String) -> UInt? {
    s.withCString { Options.parseSize($0) }
  }

  func parse(_ option: Options.Option, _ s: String) -> Options.Parsed {
    s.withCString { Options.parse(option, $0, length: strlen($0)) }
  }

  func value(_ parsed: Options.Parsed) -> UInt? {
    if case .value(let v) = parsed { return v }
    return nil
  }

  func isOutOfRange(_ parsed: Options.Parsed) -> Bool {
    if case .outOfRange = parsed { return true }
    return false
  }

  func isMalformed(_ parsed: Options.Parsed) -> Bool {
    if case .malformed = parsed { return true }
    return false
  }

  @Test func plainNumbersAndSuffixes() {
    #expect(parse("0") == 0)
    #expect(parse("131072") == 131072)
    #expect(parse("64K") == 64 << 10)
    #expect(parse("64k") == 64 << 10)
    #expect(parse("1M") == 1 << 20)
    #expect(parse("2G") == 2 << 30)
    #expect(parse("16KiB") == 16 << 10)
    #expect(parse("16kb") == 16 << 10)
    #expect(parse("3MB") == 3 << 20)
  }

  @Test func rejectsWhatIsNotASize() {
    #expect(parse("") == nil)
    #expect(parse("banana") == nil)
    #expect(parse("12X") == nil)
    #expect(parse("-5") == nil)
    #expect(parse("1K2") == nil)
    #expect(parse("64 K") == nil)
    #expect(parse("99999999999999999999999") == nil)  // overflows 64 bits
    #expect(parse("17179869184G") == nil)             // 2^34 GiB overflows
  }

  @Test func hexAndPlainNumbers() {
    #expect(parse("0x1000") == 4096)
    #expect(parse("0X20") == 32)
    #expect(parse("0x") == nil)
    #expect(value(parse(.perturb, "165")) == 165)
    #expect(value(parse(.perturb, "0xa5")) == 165)
    #expect(isMalformed(parse(.decayTime, "5s")))
    #expect(isMalformed(parse(.decayTime, "5K")))  // counts take no suffix
  }

  @Test func valuesAreCheckedAgainstTheRow() {
    #expect(isMalformed(parse(.mmapThreshold, "12Q")))
    #expect(isOutOfRange(parse(.mmapThreshold, "64M")))
    #expect(value(parse(.mmapThreshold, "32M")) == 32 << 20)
    #expect(isOutOfRange(parse(.mmapThreshold, "-5")))
    #expect(isOutOfRange(parse(.mmapThreshold, "99999999999999999999999")))
    #expect(isOutOfRange(parse(.perturb, "256")))
    #expect(isOutOfRange(parse(.check, "4")))
    // -1 disables trimming, as mallopt(M_TRIM_THRESHOLD, -1)
    #expect(value(parse(.trimThreshold, "-1")) == UInt.max)
    #expect(isOutOfRange(parse(.trimThreshold, "-2")))
    #expect(isOutOfRange(parse(.topPad, "-1")))
  }

  @Test func booleansAndReports() {
    for yes in ["1", "true", "TRUE", "yes", "Yes", "on", "ON"] { #expect(value(parse(.secure, yes)) == 1, "\(yes)") }
    for no in ["0", "false", "no", "off", "Off"] { #expect(value(parse(.verbose, no)) == 0, "\(no)") }
    for bad in ["", "2", "y", "enable", "onn"] { #expect(isMalformed(parse(.secure, bad)), "\(bad)") }
    #expect(value(parse(.stats, "1")) == 1)
    #expect(value(parse(.stats, "text")) == 1)
    #expect(value(parse(.stats, "json")) == 2)
    #expect(value(parse(.stats, "JSON")) == 2)
    #expect(value(parse(.stats, "off")) == 0)
    #expect(isMalformed(parse(.stats, "xml")))
    #expect(value(parse(.statsFile, "/tmp/s.%p")) == 9)
    #expect(isOutOfRange(parse(.statsFile, "")))
    #expect(isOutOfRange(parse(.statsFile, String(repeating: "x", count: 256))))
  }

  @Test func unknownNamesFindTheNearestRow() {
    func nearest(_ s: String) -> Options.Option { s.withCString { Options.closestName(to: $0, length: strlen($0)) } }
    #expect(nearest("SWIFTMALLOC_MMAP_TRESHOLD") == .mmapThreshold)
    #expect(nearest("SWIFTMALLOC_TRIM") == .trimThreshold)
    #expect(nearest("SWIFTMALLOC_STAT") == .stats)
    #expect(nearest("SWIFTMALLOC_STATSFILE") == .statsFile)
    #expect(nearest("swiftmalloc_verbose") == .verbose)
    #expect(nearest("SWIFTMALLOC_CACHEBUDGET") == .cacheBudget)
    #expect(nearest("SWIFTMALLOC_DECAY") == .decayTime)
  }

  /// Runs Options.collect over a made-up environment.
  func collect(_ entries: [String]) -> Options.Found {
    var env: [UnsafeMutablePointer<CChar>?] = entries.map { strdup($0) }
    env.append(nil)
    defer { for p in env { free(p) } }
    var found = Options.Found()
    env.withUnsafeMutableBufferPointer { Options.collect($0.baseAddress!, into: &found) }
    return found
  }

  @Test func swiftmallocNamesWinOverGlibcsWhichWinOverTunables() {
    let found = collect(["SWIFTMALLOC_MMAP_THRESHOLD=1M", "MALLOC_MMAP_THRESHOLD_=256K",
                         "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536:glibc.malloc.top_pad=1M:glibc.malloc.perturb=7",
                         "MALLOC_TOP_PAD_=2M", "MALLOC_PERTURB_=xyz", "SWIFTMALLOC_STATS=json"])
    #expect(found.value(.mmapThreshold) == 1 << 20)
    #expect(found.source(.mmapThreshold) == .swiftmalloc)
    #expect(found.value(.topPad) == 2 << 20)
    #expect(found.source(.topPad) == .glibcVariable)
    // a bad value keeps what a lower-ranked source gave
    #expect(found.value(.perturb) == 7)
    #expect(found.source(.perturb) == .tunables)
    #expect(found.value(.stats) == 2)
    #expect(found.source(.trimThreshold) == .unset)
  }

  @Test func tunablesAndClassicNames() {
    let found = collect(["GLIBC_TUNABLES=glibc.pthread.rseq=0:glibc.malloc.trim_threshold=0x20000:glibc.malloc.mmap_max=0:glibc.malloc.check=3:glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0",
                         "MALLOC_CHECK_=1", "MALLOC_ARENA_MAX=4", "MALLOC_TRIM_THRESHOLD_=-1"])
    #expect(found.value(.trimThreshold) == UInt.max)
    #expect(found.source(.trimThreshold) == .glibcVariable)
    #expect(found.value(.mmapMax) == 0)
    #expect(found.source(.mmapMax) == .tunables)
    #expect(found.value(.check) == 1)
    #expect(found.value(.arenaMax) == 4)
  }

  @Test func matchesVariableNamesExactly() {
    var entry = Array("SWIFTMALLOC_MMAP_THRESHOLD=1M".utf8CString)
    entry.withUnsafeMutableBufferPointer { buf in
      let v = Options.value(buf.baseAddress!, "SWIFTMALLOC_MMAP_THRESHOLD=")
      #expect(v != nil && Options.parseSize(v!) == 1 << 20)
      #expect(Options.value(buf.baseAddress!, "SWIFTMALLOC_TRIM_THRESHOLD=") == nil)
    }
    var short = Array("SWIFTMALLOC_MMAP".utf8CString)
    short.withUnsafeMutableBufferPointer { buf in
      #expect(Options.value(buf.baseAddress!, "SWIFTMALLOC_MMAP_THRESHOLD=") == nil)
    }
  }
}

/// The options table: every row is reachable from the environment or from
/// mallopt, and mallopt follows glibc's return values.
extension EngineSuite { @Suite struct OptionsTableTests {
  @Test func everyRowHasAWayIn() {
    var raw: UInt8 = 0
    var rows = 0
    while let option = Options.Option(rawValue: raw) {
      #expect(option.environmentName != nil || option.glibcName != nil || option.malloptParameter != nil, "row \(raw)")
      raw += 1
      rows += 1
    }
    #expect(rows == 15)
    #expect(rows == Options.Option.count)
  }

  @Test func malloptFollowsGlibc() {
    Heap.ensureInitialized()
    #expect(Options.mallopt(12345, 1) == 1)   // unknown: accepted, ignored
    #expect(Options.mallopt(1, 64) == 1)      // M_MXFAST: accepted, ignored
    #expect(Options.mallopt(-3, -1) == 0)     // negative M_MMAP_THRESHOLD
    #expect(Options.mallopt(-3, Int32(Options.maxMmapThreshold) + 1) == 0)
    #expect(Options.mallopt(-1, -1) == 1)     // M_TRIM_THRESHOLD -1: never trim
    #expect(Heap.pageHeapSite.state.pointee.trimThreshold == UInt.max)
    #expect(Options.mallopt(-1, 128 << 10) == 1)
    #expect(Options.mallopt(-3, 256 << 10) == 1)
    #expect(Heap.state.pointee.route.mmapThreshold == 256 << 10)
    #expect(Heap.state.pointee.route.smallLimit == UInt(SWM_MAX_SMALL))
    #expect(Options.mallopt(-3, 128 << 10) == 1)
  }
} }
