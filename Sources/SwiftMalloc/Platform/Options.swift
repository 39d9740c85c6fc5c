import CShim

// See Malloc.swift for an overview.

/// Tunables: one table (`Option`) serves the environment (SWIFTMALLOC_*) and
/// mallopt(). Each row names its variable and its mallopt parameter, the
/// values it accepts, and where its value goes: the setting of the layer
/// that reads it (Route, PageHeap, Mitigations), written under the init lock
/// (and the page heap's own lock for its settings). Configuration flows one
/// way; the one rule that changes settings at run time, glibc's dynamic mmap
/// threshold, lives here too (`mmapBlockFreed`).
/// The environment is read once, at the first allocation, by walking
/// `environ` (no getenv: it may run before libc is ready). A bad value
/// prints one warning line and keeps the default.
enum Options {
  /// Under the init lock.
  struct State {
    /// Set once mallopt or the environment fixed a threshold: the dynamic
    /// rule leaves it alone from then on, as glibc does.
    var mmapThresholdPinned: Bool
    var trimThresholdPinned: Bool
    /// Set once mallopt or the environment fixed the dirty limit.
    var dirtyLimitPinned: Bool
    var statsAtExit: Bool
    /// SWIFTMALLOC_BACKGROUND_PURGE=1: shim.c starts the purge thread.
    var backgroundPurge: Bool
  }

  static let defaultMmapThreshold: UInt = 128 << 10
  static let defaultTrimThreshold: UInt = 128 << 10
  static let defaultTopPad: UInt = 64 << 10
  /// Dirty free pages the page heap may keep (bytes).
  static let defaultDirtyLimit: UInt = 32 << 20
  /// Free pages unused for this long are decommitted (ms).
  static let decayMilliseconds: UInt = 5000
  /// glibc's upper bound for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2).
  static let maxMmapThreshold: UInt = 32 << 20

  /// The options table.
  enum Option: UInt8 {
    case mmapThreshold, trimThreshold, topPad, mmapMax, secure, stats, cacheBudget, dirtyLimit, decayTime
    case backgroundPurge

    /// The environment variable, with its "="; nil for mallopt-only rows.
    var environmentName: StaticString? {
      switch self {
      case .mmapThreshold: return "SWIFTMALLOC_MMAP_THRESHOLD="
      case .trimThreshold: return "SWIFTMALLOC_TRIM_THRESHOLD="
      case .topPad: return "SWIFTMALLOC_TOP_PAD="
      case .mmapMax: return nil
      case .secure: return "SWIFTMALLOC_SECURE="
      case .stats: return "SWIFTMALLOC_STATS="
      case .cacheBudget: return "SWIFTMALLOC_CACHE_BUDGET="
      case .dirtyLimit: return "SWIFTMALLOC_DIRTY_LIMIT="
      case .decayTime: return "SWIFTMALLOC_DECAY_MS="
      case .backgroundPurge: return "SWIFTMALLOC_BACKGROUND_PURGE="
      }
    }

    /// glibc's mallopt parameter number (malloc.h); nil for environment-only rows.
    var malloptParameter: Int32? {
      switch self {
      case .trimThreshold: return -1  // M_TRIM_THRESHOLD
      case .topPad: return -2         // M_TOP_PAD
      case .mmapThreshold: return -3  // M_MMAP_THRESHOLD
      case .mmapMax: return -4        // M_MMAP_MAX
      case .secure, .stats: return nil
      case .cacheBudget: return -1001  // SWM_M_CACHE_BUDGET, swiftmalloc's own
      case .dirtyLimit: return -1002   // SWM_M_DIRTY_LIMIT
      case .decayTime: return -1003    // SWM_M_DECAY_MS
      case .backgroundPurge: return nil  // decided at start: the thread is made then
      }
    }

    /// The largest value accepted (the smallest is 0 for every row).
    var maximum: UInt {
      switch self {
      case .mmapThreshold: return maxMmapThreshold
      case .trimThreshold: return UInt.max
      case .topPad: return Heap.maxRequest &- 1
      case .mmapMax: return UInt(Int32.max)
      case .secure, .stats, .backgroundPurge: return 1
      case .cacheBudget, .dirtyLimit: return Heap.maxRequest &- 1
      case .decayTime: return 3_600_000
      }
    }

    /// A negative mallopt value: M_TRIM_THRESHOLD -1 disables trimming, as
    /// in glibc; the other rows refuse it.
    var negativeMeans: UInt? { self == .trimThreshold ? UInt.max : nil }

    /// Stores an accepted value where its layer reads it (init lock held).
    func apply(_ value: UInt) {
      let state = Heap.state
      switch self {
      case .mmapThreshold:
        state.pointee.route.mmapThreshold = value
        state.pointee.options.mmapThresholdPinned = true
      case .trimThreshold:
        PageHeap.configure(trimThreshold: value, topPad: nil)
        state.pointee.options.trimThresholdPinned = true
      case .topPad:
        PageHeap.configure(trimThreshold: nil, topPad: value)
        state.pointee.options.mmapThresholdPinned = true
        state.pointee.options.trimThresholdPinned = true
      case .mmapMax:
        state.pointee.route.mmapEnabled = value != 0
        state.pointee.options.mmapThresholdPinned = true
      case .secure:
        if value != 0 { state.pointee.mitigations = .secure }
      case .stats:
        state.pointee.options.statsAtExit = value != 0
      case .cacheBudget:
        state.pointee.caches.budget = value
        Budget.updateShare()
      case .dirtyLimit:
        PageHeap.configure(trimThreshold: nil, topPad: nil, dirtyLimit: value)
        state.pointee.options.dirtyLimitPinned = true
      case .decayTime:
        PageHeap.configure(trimThreshold: nil, topPad: nil, decay: value)
      case .backgroundPurge:
        state.pointee.options.backgroundPurge = value != 0
      }
    }
  }

  @inline(__always) static var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(UInt32(SWM_LOCK_INIT)) }

  /// Defaults, then the environment (init lock held, at the first allocation).
  static func initialize() {
    let state = Heap.state
    state.pointee.route.mmapThreshold = defaultMmapThreshold
    state.pointee.route.mmapEnabled = true
    PageHeap.configure(trimThreshold: defaultTrimThreshold, topPad: defaultTopPad, dirtyLimit: defaultDirtyLimit,
                       decay: decayMilliseconds)
    state.pointee.caches.budget = Budget.defaultBudget
    Budget.updateShare()
    if swm_secure_built_in() != 0 { state.pointee.mitigations = .secure }
    loadEnvironment()
    Route.update()
  }

  /// mallopt: 1 when the value was taken (or the parameter is one glibc has
  /// and we ignore, or one nobody knows: glibc 2.36 returns 1 for those too);
  /// 0 for a value out of range.
  static func mallopt(_ parameter: Int32, _ value: Int32) -> Int32 {
    guard let option = option(malloptParameter: parameter) else { return 1 }
    let v: UInt
    if value >= 0 { v = UInt(value) } else if let n = option.negativeMeans { v = n } else { return 0 }
    if v > option.maximum { return 0 }
    swm_lock(lock)
    option.apply(v)
    Route.update()
    swm_unlock(lock)
    return 1
  }

  private static func option(malloptParameter parameter: Int32) -> Option? {
    var raw: UInt8 = 0
    while let option = Option(rawValue: raw) {
      if option.malloptParameter == parameter { return option }
      raw &+= 1
    }
    return nil
  }

  static func loadEnvironment() {
    guard let env = swm_environ() else { return }
    var i = 0
    while let entry = env[i] {
      i &+= 1
      var raw: UInt8 = 0
      while let option = Option(rawValue: raw) {
        raw &+= 1
        guard let name = option.environmentName, let v = value(entry, name) else { continue }
        if let n = parseSize(v), n <= option.maximum { option.apply(n) }
        else { Diagnostics.badOption(name, v) }
        break
      }
    }
  }

  /// glibc's dynamic threshold: a program that frees an mmap block of n
  /// bytes (up to 32 MiB) will likely ask for n again, so from now on blocks
  /// of that size come from the heap (no mmap, munmap and page faults for
  /// each), and the trim threshold follows at twice that. Unless mallopt or
  /// the environment set a threshold (then it is pinned).
  static func mmapBlockFreed(bytes: UInt) {
    let state = Heap.state
    if state.pointee.options.mmapThresholdPinned || bytes <= state.pointee.route.mmapThreshold
      || bytes > maxMmapThreshold { return }
    swm_lock(lock)
    if !state.pointee.options.mmapThresholdPinned && bytes > state.pointee.route.mmapThreshold {
      state.pointee.route.mmapThreshold = bytes &+ 1  // that very size now comes from the heap
      if !state.pointee.options.trimThresholdPinned { PageHeap.configure(trimThreshold: 2 &* bytes, topPad: nil) }
      // the heap will keep blocks of that size free for reuse: two of them
      // stay resident (at most 64 MiB) rather than being decommitted and
      // faulted in again each time
      if !state.pointee.options.dirtyLimitPinned && 2 &* bytes > PageHeap.state.pointee.dirtyLimit {
        PageHeap.configure(trimThreshold: nil, topPad: nil, dirtyLimit: 2 &* bytes)
      }
      Route.update()
    }
    swm_unlock(lock)
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
