import CShim

// See Malloc.swift for an overview.

/// Where pages come from, and where they go back.
///
/// OS memory moves through these states (each call named by its transition):
///   unmapped --sbrk(+n) / mmap--> fresh (reads zero, not resident)
///   fresh --first write--> resident (dirty)
///   resident --madvise(DONTNEED)--> fresh again (swm_sys_decommit)
///   fresh/resident at the sbrk top --sbrk(-n)--> unmapped (trim)
///   mmap block --munmap--> unmapped
/// sbrk is tried first for page-heap memory. When it fails (RLIMIT_DATA, brk
/// blocked) the heap maps a region instead and keeps working; when another
/// allocator moved the break, the next sbrk region simply starts elsewhere.
///
/// The process has one break, so its state is one (HeapState.os) and the
/// functions below are static. An OSMemory value holds nothing: it is the
/// PageSource (Back/PageSource.swift) the process's page heap is handed,
/// where a test hands its page heap a buffer of its own.
struct OSMemory {
  /// Under the page-heap lock (the page heap is the only caller).
  struct State {
    /// End of the sbrk region we grew last; 0 before the first.
    var sbrkEnd: UInt
    var sbrkBytes: UInt
    var regionMmapBytes: UInt
    /// The most sbrkBytes + regionMmapBytes ever were (malloc_info's system max).
    var heapPeak: UInt
    // Statistics: system calls that moved the break (up or down), regions
    // mapped, and trims (negative sbrk that went through).
    var sbrkCalls: UInt
    var mmapCalls: UInt
    var trims: UInt
  }

  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.os) { $0 }
  }

  static let pageShift: UInt = 12
  static let pageSize: UInt = 1 << pageShift
  static let pageMask: UInt = pageSize - 1
  /// An mmap region for the page heap is at least this long.
  static let minRegion: UInt = 1 << 20

  struct Region {
    var start: UInt
    var bytes: UInt
    var fromSbrk: Bool
  }

  /// At least `bytes` (a page multiple) of fresh memory, plus `pad` (M_TOP_PAD)
  /// when it comes from sbrk. Page-heap lock held.
  static func grow(bytes: UInt, pad: UInt) -> Region? {
    if bytes >= Heap.maxRequest { return nil }
    let padded = (bytes &+ pad &+ pageMask) & ~pageMask
    if let region = growSbrk(padded) { return region }
    let length = max(bytes, minRegion)
    state.pointee.mmapCalls &+= 1
    guard let p = swm_sys_mmap(Int(length)) else { return nil }
    state.pointee.regionMmapBytes &+= length
    notePeak()
    return Region(start: UInt(bitPattern: p), bytes: length, fromSbrk: false)
  }

  private static func growSbrk(_ bytes: UInt) -> Region? {
    guard let current = swm_sys_sbrk(0) else { return nil }
    let brk = UInt(bitPattern: current)
    // Another allocator (or brk()) may have moved the break: start a new,
    // page-aligned region there. The page map keeps regions apart.
    let lead = (pageSize &- (brk & pageMask)) & pageMask
    let total = lead &+ bytes
    if total > UInt(Int.max) { return nil }
    state.pointee.sbrkCalls &+= 1
    guard let old = swm_sys_sbrk(Int(total)) else { return nil }
    let oldBrk = UInt(bitPattern: old)
    let start = (oldBrk &+ pageMask) & ~pageMask
    let end = oldBrk &+ total
    let usable = (end &- start) & ~pageMask
    if usable < bytes {
      // the break moved between our two calls; give it back if still ours
      if UInt(bitPattern: swm_sys_sbrk(0)) == end {
        state.pointee.sbrkCalls &+= 1
        _ = swm_sys_sbrk(-Int(total))
      }
      return nil
    }
    state.pointee.sbrkEnd = start &+ usable
    state.pointee.sbrkBytes &+= usable
    notePeak()
    return Region(start: start, bytes: usable, fromSbrk: true)
  }

  /// Lowers the break to `newEnd` if the break is still where we left it.
  /// Page-heap lock held.
  static func shrinkSbrk(to newEnd: UInt) -> Bool {
    let end = state.pointee.sbrkEnd
    guard newEnd < end, let current = swm_sys_sbrk(0), UInt(bitPattern: current) == end else { return false }
    let release = end &- newEnd
    if release > UInt(Int.max) { return false }
    state.pointee.sbrkCalls &+= 1
    guard swm_sys_sbrk(-Int(release)) != nil else { return false }
    state.pointee.sbrkEnd = newEnd
    state.pointee.sbrkBytes &-= release
    state.pointee.trims &+= 1
    return true
  }

  private static func notePeak() {
    state.pointee.heapPeak = max(state.pointee.heapPeak, state.pointee.sbrkBytes &+ state.pointee.regionMmapBytes)
  }
}

/// The process's page source: the sbrk heap and mmap regions, madvise,
/// guard pages, the coarse clock (page-heap lock held).
extension OSMemory: PageSource {
  @inline(__always) func grow(bytes: UInt, pad: UInt) -> Region? { OSMemory.grow(bytes: bytes, pad: pad) }
  @inline(__always) var topEnd: UInt { OSMemory.state.pointee.sbrkEnd }
  @inline(__always) func shrinkTop(to newEnd: UInt) -> Bool { OSMemory.shrinkSbrk(to: newEnd) }
  @inline(__always) func decommit(_ start: UInt, bytes: UInt) { _ = swm_sys_decommit(RawPtr(bitPattern: start), Int(bytes)) }
  @inline(__always) func installGuard(_ start: UInt, bytes: UInt) -> Bool {
    swm_guard_install(RawPtr(bitPattern: start), Int(bytes)) != 0
  }
  @inline(__always) func removeGuard(_ start: UInt, bytes: UInt) -> Bool {
    swm_guard_remove(RawPtr(bitPattern: start), Int(bytes)) == 0
  }
  @inline(__always) func now() -> UInt { UInt(swm_now_ms()) }
  /// The statistics' peaks are taken when the heap grows (API/Stats.swift).
  @inline(__always) func grew() { Stats.noteGrowth() }
}
