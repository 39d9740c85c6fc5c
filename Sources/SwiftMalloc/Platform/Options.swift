import CShim

/// Tunables: defaults, SWIFTMALLOC_* environment variables and mallopt().
///
/// The environment is read by walking `environ` on the first slow path (no
/// getenv: it may run before libc is initialised). Sizes accept K, M and G
/// suffixes (powers of 1024, an optional trailing "B" or "iB"); a bad value
/// prints one warning line and keeps the default.
///   SWIFTMALLOC_MMAP_THRESHOLD  requests from here up are mmapped (128K)
///   SWIFTMALLOC_TRIM_THRESHOLD  free bytes at the sbrk top that trigger a trim (128K)
///   SWIFTMALLOC_TOP_PAD         bytes kept at the top when growing or trimming (64K)
///   SWIFTMALLOC_STATS           1: print malloc_stats() to stderr at exit
///   SWIFTMALLOC_SECURE          1: secure mode (Secure.swift)
enum Options {
  static let defaultMmapThreshold: UInt = 128 << 10
  static let defaultTrimThreshold: UInt = 128 << 10
  static let defaultTopPad: UInt = 64 << 10
  static let defaultDirtyLimit: UInt = 64 << 20
  /// Dirty free pages untouched for this long are decommitted.
  static let decayMilliseconds: UInt = 5000
  /// glibc's upper bound for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2).
  static let maxMmapThreshold: UInt = 32 << 20

  // glibc's mallopt parameter numbers (malloc.h) that take effect; the
  // others (M_MXFAST, M_CHECK_ACTION, M_PERTURB, M_ARENA_*) are accepted.
  static let M_TRIM_THRESHOLD: Int32 = -1
  static let M_TOP_PAD: Int32 = -2
  static let M_MMAP_THRESHOLD: Int32 = -3
  static let M_MMAP_MAX: Int32 = -4

  static func updateSmallLimit() {
    let state = Heap.state
    let threshold = state.pointee.mmapEnabled != 0 ? state.pointee.mmapThreshold : UInt.max
    state.pointee.smallLimit = min(UInt(SWM_MAX_SMALL), threshold == 0 ? 0 : threshold &- 1)
    // Secure mode keeps the fast paths but sends every call past them: no
    // request is "small" for mallocFast, and every bin has limit 0.
    if state.pointee.secure != 0 { state.pointee.smallLimit = 0 }
  }

  static func loadEnvironment() {
    guard let env = swm_environ() else { return }
    let state = Heap.state
    var i = 0
    while let entry = env[i] {
      i &+= 1
      if let v = value(entry, "SWIFTMALLOC_MMAP_THRESHOLD=") {
        if let n = parseSize(v), n <= maxMmapThreshold {
          state.pointee.mmapThreshold = n
          state.pointee.mmapThresholdPinned = 1
        }
        else { Diagnostics.warn("ignoring bad SWIFTMALLOC_MMAP_THRESHOLD=", v) }
      } else if let v = value(entry, "SWIFTMALLOC_TRIM_THRESHOLD=") {
        if let n = parseSize(v) {
          state.pointee.trimThreshold = n
          state.pointee.trimThresholdPinned = 1
        }
        else { Diagnostics.warn("ignoring bad SWIFTMALLOC_TRIM_THRESHOLD=", v) }
      } else if let v = value(entry, "SWIFTMALLOC_TOP_PAD=") {
        if let n = parseSize(v), n < Heap.maxRequest { state.pointee.topPad = n }
        else { Diagnostics.warn("ignoring bad SWIFTMALLOC_TOP_PAD=", v) }
      } else if let v = value(entry, "SWIFTMALLOC_SECURE=") {
        if let n = parseSize(v), n <= 1 { state.pointee.secure = max(state.pointee.secure, n) }
        else { Diagnostics.warn("ignoring bad SWIFTMALLOC_SECURE=", v) }
      } else if let v = value(entry, "SWIFTMALLOC_STATS=") {
        if let n = parseSize(v), n <= 1 { state.pointee.statsAtExit = n }
        else { Diagnostics.warn("ignoring bad SWIFTMALLOC_STATS=", v) }
      }
    }
  }

  /// The text after `name` (which ends in "=") if `entry` starts with it.
  static func value(_ entry: UnsafeMutablePointer<CChar>, _ name: StaticString) -> UnsafeMutablePointer<CChar>? {
    let n = name.utf8Start
    var k = 0
    while k < name.utf8CodeUnitCount {
      if UInt8(bitPattern: entry[k]) != n[k] { return nil }
      k &+= 1
    }
    return entry + k
  }

  /// "123", "64K", "1M", "2GiB", "16kb": bytes, or nil for anything else
  /// (empty, other characters, overflow).
  static func parseSize(_ text: UnsafePointer<CChar>) -> UInt? {
    var p = text
    var n: UInt = 0
    var digits = 0
    while p.pointee >= 48 && p.pointee <= 57 {
      let (m, o1) = n.multipliedReportingOverflow(by: 10)
      let (s, o2) = m.addingReportingOverflow(UInt(p.pointee &- 48))
      if o1 || o2 { return nil }
      n = s
      digits &+= 1
      p += 1
    }
    if digits == 0 { return nil }
    var shift: UInt = 0
    switch p.pointee | 0x20 {  // lower case
    case 107: shift = 10  // k
    case 109: shift = 20  // m
    case 103: shift = 30  // g
    default: break
    }
    if shift != 0 {
      p += 1
      if p.pointee | 0x20 == 105 { p += 1 }  // i
      if p.pointee | 0x20 == 98 { p += 1 }   // b
    }
    if p.pointee != 0 { return nil }
    if shift != 0 {
      if n > (UInt.max &>> shift) { return nil }
      n = n &<< shift
    }
    return n
  }
}
