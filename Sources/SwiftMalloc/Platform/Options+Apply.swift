import CShim

// See Malloc.swift for an overview; the table is in Options.swift.

/// Where each row's value goes, and what it is now.
extension Options.Option {
  /// Stores an accepted value where its layer reads it (init lock held).
  /// The path row (statsFile) is stored by Options.setStatsFile.
  func apply(_ value: UInt) {
    let state = Heap.state
    switch self {
    case .mmapThreshold:
      state.pointee.route.mmapThreshold = value
      state.pointee.options.mmapThresholdPinned = true
    case .trimThreshold:
      Heap.pageHeapSite.configure(trimThreshold: value, topPad: nil)
      state.pointee.options.trimThresholdPinned = true
    case .topPad:
      Heap.pageHeapSite.configure(trimThreshold: nil, topPad: value)
      state.pointee.options.mmapThresholdPinned = true
      state.pointee.options.trimThresholdPinned = true
    case .mmapMax:
      state.pointee.route.mmapEnabled = value != 0
      state.pointee.options.mmapMax = value
      state.pointee.options.mmapThresholdPinned = true
    case .secure:
      if value != 0 { state.pointee.mitigations = .secure }
    case .stats:
      state.pointee.options.statsFormat = UInt8(truncatingIfNeeded: value)
      state.pointee.options.statsAtExit = value != 0
    case .cacheBudget:
      state.pointee.caches.budget = value
      Budget.updateShare()
    case .dirtyLimit:
      Heap.pageHeapSite.configure(trimThreshold: nil, topPad: nil, dirtyLimit: value, fixed: true)
      state.pointee.options.dirtyLimitPinned = true
    case .backgroundPurge:
      state.pointee.options.backgroundPurge = value != 0
    case .decayTime:
      Heap.pageHeapSite.configure(trimThreshold: nil, topPad: nil, decay: value)
    case .statsFile:
      break
    case .verbose:
      state.pointee.options.verbose = value != 0
    case .perturb:
      state.pointee.mitigations.perturb(UInt8(truncatingIfNeeded: value))
    case .check:
      state.pointee.options.check = UInt8(truncatingIfNeeded: value)
      if value != 0 { state.pointee.mitigations.checkOverflows() }
    case .arenaMax:
      state.pointee.options.arenaMax = value
    }
  }

  /// The value in effect (the path row: its length).
  var current: UInt {
    let state = Heap.state
    switch self {
    case .mmapThreshold: return state.pointee.route.mmapThreshold
    case .trimThreshold: return state.pointee.pageHeap.trimThreshold
    case .topPad: return state.pointee.pageHeap.topPad
    case .mmapMax: return state.pointee.route.mmapEnabled ? state.pointee.options.mmapMax : 0
    case .secure: return state.pointee.mitigations.quarantine ? 1 : 0
    case .stats: return UInt(state.pointee.options.statsFormat)
    case .cacheBudget: return state.pointee.caches.budget
    case .dirtyLimit: return state.pointee.pageHeap.dirtyLimit
    case .decayTime: return state.pointee.pageHeap.decayMilliseconds
    case .statsFile: return UInt(Options.statsFileLength)
    case .verbose: return state.pointee.options.verbose ? 1 : 0
    case .perturb: return UInt(state.pointee.mitigations.perturbByte)
    case .check: return UInt(state.pointee.options.check)
    case .arenaMax: return state.pointee.options.arenaMax
    case .backgroundPurge: return state.pointee.options.backgroundPurge ? 1 : 0
    }
  }
}

extension Options {
  /// SWIFTMALLOC_STATS_FILE's storage (NUL-terminated).
  static var statsFile: UnsafeMutablePointer<UInt8> {
    UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &Heap.state.pointee.options.statsFile) { $0 })
      .assumingMemoryBound(to: UInt8.self)
  }

  static var statsFileLength: Int {
    var n = 0
    while statsFile[n] != 0 { n &+= 1 }
    return n
  }

  /// Keeps a copy of the path (it must outlive a setenv that replaces the
  /// variable); a report at exit follows, as text unless SWIFTMALLOC_STATS
  /// chose JSON (init lock held; length <= maxPath).
  static func setStatsFile(_ text: UnsafePointer<CChar>, length: Int) {
    let path = statsFile
    var i = 0
    while i < length && i < maxPath {
      path[i] = UInt8(bitPattern: text[i])
      i &+= 1
    }
    path[i] = 0
    let options = withUnsafeMutablePointer(to: &Heap.state.pointee.options) { $0 }
    if options.pointee.statsFormat == 0 { options.pointee.statsFormat = 1 }
    options.pointee.statsAtExit = true
  }
}
