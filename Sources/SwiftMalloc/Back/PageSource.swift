import CShim

// See Malloc.swift for an overview.

/// What the page heap is handed to reach the layer below it: where fresh
/// pages come from, and how they go back. The page heap calls nothing else
/// below it: the process's page heap is handed OSMemory (the sbrk heap, mmap
/// regions, madvise, guard pages, the coarse clock); a unit test hands its
/// own page heap a buffer (Tests/SwiftMallocTests/PageHeapTests.swift).
/// PageHeap is generic over it, so the process's calls are specialised and
/// inlined: no table, no indirect call.
///
/// Every call is made under the page heap's lock, but `installGuard`, which
/// its caller makes after unlocking (the span is its own by then).
/// Addresses and sizes are bytes, page aligned (OSMemory.pageSize).
protocol PageSource {
  /// At least `bytes` (a page multiple) of fresh memory, which reads zero
  /// and is not resident, plus `pad` (M_TOP_PAD) when it extends the top;
  /// nil when there is none (a limit, or `bytes` >= Heap.maxRequest).
  func grow(bytes: UInt, pad: UInt) -> OSMemory.Region?
  /// The end of the top region (the sbrk heap), whose free tail the page
  /// heap may give back with `shrinkTop`; 0 before it exists.
  var topEnd: UInt { get }
  /// Gives [newEnd, topEnd) back, so that topEnd becomes newEnd. False
  /// when it cannot (another allocator moved the break): nothing changed.
  func shrinkTop(to newEnd: UInt) -> Bool
  /// Decommits `bytes` from `start`: afterwards they read zero and are not
  /// resident. Cannot fail (the pages stay counted as dirty otherwise).
  func decommit(_ start: UInt, bytes: UInt)
  /// Makes `bytes` from `start` a guard (any access faults). False when it
  /// could not: the pages stay ordinary memory.
  func installGuard(_ start: UInt, bytes: UInt) -> Bool
  /// Makes a guard ordinary memory again. False when it could not: the
  /// pages must never be handed out.
  func removeGuard(_ start: UInt, bytes: UInt) -> Bool
  /// Milliseconds of a monotonic clock, for decay (it may wrap: the page
  /// heap compares times by their difference).
  func now() -> UInt
  /// Told after fresh memory joined the free spans (for the statistics'
  /// peaks).
  func grew()
}

/// Where a page heap lives and what it stands on: its state, its lock and
/// its page source. PageHeap is generic over it so that the process's page
/// heap (ProcessPageHeap, Heap.swift) is a value of no size whose state and
/// lock are fixed addresses, as cheap as a static; a unit test's site holds
/// the state, lock and source it built.
protocol PageHeapSite {
  associatedtype Source: PageSource
  var state: UnsafeMutablePointer<PageHeapState> { get }
  var lock: UnsafeMutablePointer<swm_lock_t> { get }
  var source: Source { get }
}

extension PageHeapSite {
  /// Sets the page heap's trim threshold and M_TOP_PAD (bytes), dirty limit
  /// (bytes) and decay time (ms); nil leaves one unchanged. Options writes
  /// them (configuration flows down, never back).
  /// `fixed`: the dirty limit is the program's own and does not grow with
  /// the bytes in use (PageHeap.dirtyCap).
  func configure(trimThreshold: UInt?, topPad: UInt?, dirtyLimit: UInt? = nil, decay: UInt? = nil, fixed: Bool? = nil,
                 withinPeak: Bool? = nil) {
    swm_lock(lock)
    if let withinPeak { state.pointee.dirtyWithinPeak = withinPeak }
    if let trimThreshold { state.pointee.trimThreshold = trimThreshold }
    if let topPad { state.pointee.topPad = topPad }
    if let dirtyLimit { state.pointee.dirtyLimit = dirtyLimit }
    if let fixed { state.pointee.dirtyLimitFixed = fixed }
    if let decay { state.pointee.decayMilliseconds = decay }
    swm_unlock(lock)
  }
}
