import CShim

// See Malloc.swift for an overview.

/// Tunables: one table (`Option`) serves the environment and mallopt(). Each
/// row names its variables (SWIFTMALLOC_*, glibc's MALLOC_*_ and its
/// GLIBC_TUNABLES name glibc.malloc.*), its mallopt parameter, the values it
/// accepts, and where its value goes: the setting of the layer that reads it
/// (Route, PageHeap, Budget, Mitigations), written under the init lock (and
/// the page heap's own lock for its settings). Configuration flows one way;
/// the one rule that changes settings at run time, glibc's dynamic mmap
/// threshold, lives here too (`mmapBlockFreed`).
///
/// The environment is read once, at the first allocation, by walking
/// `environ` (no getenv: it may run before libc is ready), in
/// Options+Environment.swift: SWIFTMALLOC_* wins over MALLOC_*_, which wins
/// over GLIBC_TUNABLES. A bad value, an unknown SWIFTMALLOC_ name and a
/// glibc name we ignore each print one line (Options+Messages.swift) and
/// keep what was in effect.
enum Options {
  /// Under the init lock.
  struct State {
    /// Set once mallopt or the environment fixed a threshold: the dynamic
    /// rule leaves it alone from then on, as glibc does.
    var mmapThresholdPinned: Bool
    var trimThresholdPinned: Bool
    /// Set once mallopt or the environment fixed the dirty limit.
    var dirtyLimitPinned: Bool
    /// SWIFTMALLOC_BACKGROUND_PURGE=1: shim.c starts the purge thread.
    var backgroundPurge: Bool
    /// A report at exit (SWIFTMALLOC_STATS, or SWIFTMALLOC_STATS_FILE alone).
    var statsAtExit: Bool
    /// SWIFTMALLOC_STATS: 0 none, 1 text, 2 JSON.
    var statsFormat: UInt8
    /// SWIFTMALLOC_VERBOSE: the options in effect were printed at start.
    var verbose: Bool
    /// glibc.malloc.check / MALLOC_CHECK_ as set (not 0: canaries).
    var check: UInt8
    /// M_MMAP_MAX as set; 0 turns mmap blocks off, any other value is no limit.
    var mmapMax: UInt
    /// MALLOC_ARENA_MAX as set: accepted; there are no arenas to limit.
    var arenaMax: UInt
    /// Where each row's value came from (Source raw values), by row.
    var sources: InlineArray<16, UInt8>
    /// SWIFTMALLOC_STATS_FILE, NUL-terminated; empty: standard error.
    var statsFile: InlineArray<256, UInt8>
  }

  /// Where a row's value came from, lowest rank first.
  enum Source: UInt8 {
    case unset, tunables, glibcVariable, swiftmalloc, mallopt
  }

  /// What a row's value is written as.
  enum Kind {
    case size      // bytes: 123, 64K, 1M, 2G (or 0x hex)
    case number    // a plain count
    case boolean   // 1/0, true/false, yes/no, on/off
    case report    // SWIFTMALLOC_STATS: 0, 1/text, json
    case path      // a file name
  }

  static let defaultMmapThreshold: UInt = 128 << 10
  static let defaultTrimThreshold: UInt = 128 << 10
  static let defaultTopPad: UInt = 64 << 10
  /// glibc's DEFAULT_MMAP_MAX.
  static let defaultMmapMax: UInt = 65536
  /// Dirty free pages the page heap may keep (bytes).
  static let defaultDirtyLimit: UInt = 64 << 20
  /// Free pages unused for this long are decommitted (ms).
  static let decayMilliseconds: UInt = 5000
  /// glibc's upper bound for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2).
  static let maxMmapThreshold: UInt = 32 << 20
  /// The largest size the other size rows take (32T).
  static let maxSize: UInt = Heap.maxRequest / 2
  /// The longest SWIFTMALLOC_STATS_FILE (bytes, without the NUL).
  static let maxPath = 255

  /// The options table.
  enum Option: UInt8 {
    case mmapThreshold, trimThreshold, topPad, mmapMax, secure, stats, cacheBudget, dirtyLimit, decayTime
    case statsFile, verbose, perturb, check, arenaMax
    case backgroundPurge

    static let count = 15

    /// The SWIFTMALLOC_ variable, with its "="; nil for rows without one.
    var environmentName: StaticString? {
      switch self {
      case .mmapThreshold: return "SWIFTMALLOC_MMAP_THRESHOLD="
      case .trimThreshold: return "SWIFTMALLOC_TRIM_THRESHOLD="
      case .topPad: return "SWIFTMALLOC_TOP_PAD="
      case .mmapMax: return "SWIFTMALLOC_MMAP_MAX="
      case .secure: return "SWIFTMALLOC_SECURE="
      case .stats: return "SWIFTMALLOC_STATS="
      case .cacheBudget: return "SWIFTMALLOC_CACHE_BUDGET="
      case .dirtyLimit: return "SWIFTMALLOC_DIRTY_LIMIT="
      case .decayTime: return "SWIFTMALLOC_DECAY_MS="
      case .statsFile: return "SWIFTMALLOC_STATS_FILE="
      case .verbose: return "SWIFTMALLOC_VERBOSE="
      case .perturb: return "SWIFTMALLOC_PERTURB="
      case .check, .arenaMax: return nil
      case .backgroundPurge: return "SWIFTMALLOC_BACKGROUND_PURGE="
      }
    }

    /// glibc's classic variable (MALLOC_*_), with its "=".
    var glibcName: StaticString? {
      switch self {
      case .mmapThreshold: return "MALLOC_MMAP_THRESHOLD_="
      case .trimThreshold: return "MALLOC_TRIM_THRESHOLD_="
      case .topPad: return "MALLOC_TOP_PAD_="
      case .mmapMax: return "MALLOC_MMAP_MAX_="
      case .perturb: return "MALLOC_PERTURB_="
      case .check: return "MALLOC_CHECK_="
      case .arenaMax: return "MALLOC_ARENA_MAX="
      default: return nil
      }
    }

    /// The GLIBC_TUNABLES name after "glibc.malloc.", with its "=".
    var tunableName: StaticString? {
      switch self {
      case .mmapThreshold: return "mmap_threshold="
      case .trimThreshold: return "trim_threshold="
      case .topPad: return "top_pad="
      case .mmapMax: return "mmap_max="
      case .perturb: return "perturb="
      case .check: return "check="
      case .arenaMax: return "arena_max="
      default: return nil
      }
    }

    /// The name shown for the row: its SWIFTMALLOC_ variable, else glibc's.
    var displayName: StaticString { environmentName ?? glibcName! }

    /// glibc's mallopt parameter number (malloc.h); nil for environment-only rows.
    var malloptParameter: Int32? {
      switch self {
      case .trimThreshold: return -1  // M_TRIM_THRESHOLD
      case .topPad: return -2         // M_TOP_PAD
      case .mmapThreshold: return -3  // M_MMAP_THRESHOLD
      case .mmapMax: return -4        // M_MMAP_MAX
      case .arenaMax: return -8       // M_ARENA_MAX: accepted, nothing to limit
      case .cacheBudget: return -1001  // SWM_M_CACHE_BUDGET, swiftmalloc's own
      case .dirtyLimit: return -1002   // SWM_M_DIRTY_LIMIT
      case .decayTime: return -1003    // SWM_M_DECAY_MS
      // Set at start only: they decide which path every call takes.
      case .secure, .stats, .statsFile, .verbose, .perturb, .check, .backgroundPurge: return nil
      }
    }

    var kind: Kind {
      switch self {
      case .mmapThreshold, .trimThreshold, .topPad, .cacheBudget, .dirtyLimit: return .size
      case .mmapMax, .decayTime, .perturb, .check, .arenaMax: return .number
      case .secure, .verbose, .backgroundPurge: return .boolean
      case .stats: return .report
      case .statsFile: return .path
      }
    }

    /// The largest value accepted (the smallest is 0 for every row).
    var maximum: UInt {
      switch self {
      case .mmapThreshold: return maxMmapThreshold
      case .trimThreshold: return UInt.max
      case .topPad, .cacheBudget, .dirtyLimit: return maxSize
      case .mmapMax, .arenaMax: return UInt(Int32.max)
      case .secure, .verbose, .backgroundPurge: return 1
      case .stats: return 2
      case .decayTime: return 3_600_000
      case .perturb: return 255
      case .check: return 3
      case .statsFile: return UInt(maxPath)
      }
    }

    /// A negative value: M_TRIM_THRESHOLD -1 disables trimming, as in
    /// glibc (from mallopt and the environment alike); the other rows refuse it.
    var negativeMeans: UInt? { self == .trimThreshold ? UInt.max : nil }
  }

  @inline(__always) static var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(UInt32(SWM_LOCK_INIT)) }

  /// Defaults, then the environment (init lock held, at the first allocation).
  static func initialize() {
    let state = Heap.state
    state.pointee.route.mmapThreshold = defaultMmapThreshold
    state.pointee.route.mmapEnabled = true
    state.pointee.options.mmapMax = defaultMmapMax
    Heap.pageHeapSite.configure(trimThreshold: defaultTrimThreshold, topPad: defaultTopPad, dirtyLimit: defaultDirtyLimit,
                       decay: decayMilliseconds)
    state.pointee.caches.budget = Budget.defaultBudget
    Budget.updateShare()
    if swm_secure_built_in() != 0 { state.pointee.mitigations = .secure }
    loadEnvironment()
    // secure mode: no free pages kept resident beyond the peak in use (PageHeap.dirtyCap)
    if state.pointee.mitigations.quarantine { Heap.pageHeapSite.configure(trimThreshold: nil, topPad: nil, withinPeak: true) }
    Route.update()
    if state.pointee.options.verbose { printInEffect() }
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
    Heap.state.pointee.options.sources[Int(option.rawValue)] = Source.mallopt.rawValue
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
      if !state.pointee.options.trimThresholdPinned { Heap.pageHeapSite.configure(trimThreshold: 2 &* bytes, topPad: nil) }
      // the heap will keep blocks of that size free for reuse: two of them
      // stay resident (at most 64 MiB) rather than being decommitted and
      // faulted in again each time
      if !state.pointee.options.dirtyLimitPinned && 2 &* bytes > Heap.pageHeapSite.state.pointee.dirtyLimit {
        Heap.pageHeapSite.configure(trimThreshold: nil, topPad: nil, dirtyLimit: 2 &* bytes)
      }
      Route.update()
    }
    swm_unlock(lock)
  }
}
