import Testing
@testable import SwiftMalloc
import CShim

@Suite struct OptionsTests {
  func parse(_ s: String) -> UInt? {
    s.withCString { Options.parseSize($0) }
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
      #expect(option.environmentName != nil || option.malloptParameter != nil, "row \(raw)")
      raw += 1
      rows += 1
    }
    #expect(rows == 10)
  }

  @Test func malloptFollowsGlibc() {
    Heap.ensureInitialized()
    #expect(Options.mallopt(12345, 1) == 1)   // unknown: accepted, ignored
    #expect(Options.mallopt(1, 64) == 1)      // M_MXFAST: accepted, ignored
    #expect(Options.mallopt(-3, -1) == 0)     // negative M_MMAP_THRESHOLD
    #expect(Options.mallopt(-3, Int32(Options.maxMmapThreshold) + 1) == 0)
    #expect(Options.mallopt(-1, -1) == 1)     // M_TRIM_THRESHOLD -1: never trim
    #expect(PageHeap.state.pointee.trimThreshold == UInt.max)
    #expect(Options.mallopt(-1, 128 << 10) == 1)
    #expect(Options.mallopt(-3, 256 << 10) == 1)
    #expect(Heap.state.pointee.route.mmapThreshold == 256 << 10)
    #expect(Heap.state.pointee.route.smallLimit == UInt(SWM_MAX_SMALL))
    #expect(Options.mallopt(-3, 128 << 10) == 1)
  }
} }
