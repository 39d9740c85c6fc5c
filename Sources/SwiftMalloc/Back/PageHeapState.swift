import CShim

// See Malloc.swift for an overview; the page heap's methods are in PageHeap.swift.

/// A page heap's state (HeapState.pageHeap for the process's), under its
/// lock; all-zero is an empty page heap with every setting 0.
struct PageHeapState {
  static let exactLists = 128
  /// With dirtyWithinPeak: the bytes in use plus dirty may pass the peak in
  /// use by this much at least (PageHeap.dirtyCap, spanSlack).
  static let peakSlack: UInt = 1 << 20

  /// Bytes in free spans.
  var freeBytes: UInt
  /// Of those, bytes outside the spans' dirty extents: they read as zero
  /// and are not resident (fresh or decommitted).
  var cleanBytes: UInt
  /// When the page heap last looked for dirty spans to decay (ms).
  var lastDecay: UInt
  // Settings (Options.configure writes them, under this lock too).
  var trimThreshold: UInt
  var topPad: UInt
  /// Free bytes that may stay resident at most (dirty), or the bytes in
  /// use if that is more, unless `dirtyLimitFixed` (dirtyCap); beyond
  /// it the dirty pages go back at once.
  var dirtyLimit: UInt
  /// Set when the program fixed the dirty limit (environment, mallopt).
  var dirtyLimitFixed: Bool
  /// Secure mode: free pages stay resident only within the peak of the
  /// bytes in use (dirtyCap).
  var dirtyWithinPeak: Bool
  /// With dirtyWithinPeak: the most bytes the heap has had in use (not
  /// free), guard pages not counted (residentInUseBytes), noted after each
  /// allocation.
  var inUsePeak: UInt
  /// With dirtyWithinPeak: bytes of the central lists' spans in use
  /// (allocateSpan to release), and the most there have been (notePeak);
  /// the peak sets the slack small spans' free pages get (spanSlack).
  var spanBytes: UInt
  var spanPeak: UInt
  /// Bytes the heap holds from its source (free or not): grown, less
  /// what was trimmed from the top.
  var heapBytes: UInt
  /// Free pages unused for this long are decommitted (ms).
  var decayMilliseconds: UInt
  /// Bytes of guard pages of spans in use (atomic): neither the program's
  /// nor allocatable; mallinfo2 counts them with the free bytes.
  var guardBytes: UInt
  // Statistics: madvise calls that decommitted free pages, decay passes
  // (decay time or dirty limit) that decommitted any, guard pages made or
  // removed (atomic).
  var madviseCalls: UInt
  var decays: UInt
  var guardCalls: UInt
  /// lists[n], 1...exactLists: free spans of exactly n pages; lists[0]: longer ones.
  var lists: InlineArray<129, SpanList>
  /// Secure mode's small spans kept with their guard pages
  /// (PageHeap+GuardedPool.swift): guardedLists[n] holds spans of n pages.
  static let guardedListCount = 33
  static let guardedLimit: UInt = 64 << 20
  var guardedLists: InlineArray<33, SpanList>
  var guardedBytes: UInt

  /// Free bytes that may be resident: those inside the free spans' dirty extents.
  @inline(__always) var dirtyBytes: UInt { freeBytes &- cleanBytes }
  /// Bytes the heap holds that no span in use does (free spans and secure
  /// mode's kept spans are not in use).
  @inline(__always) var inUseBytes: UInt {
    let held = freeBytes &+ guardedBytes
    return heapBytes > held ? heapBytes &- held : 0
  }
  /// The bytes in use that take memory: in use less the guard pages
  /// (of spans in use and kept), which hold none. Secure mode's cap on free
  /// pages measures its peak (PageHeap.dirtyCap): counting the guards, a
  /// program of one-page spans had twice its resident peak as the peak, and
  /// its free pages stayed resident up to the difference (a hostile test
  /// alternating size bands near a 64 MiB peak: 167 MB peak RSS against
  /// hardened_malloc's 143).
  @inline(__always) var residentInUseBytes: UInt {
    let inUse = inUseBytes
    let guards = guardBytes
    return inUse > guards ? inUse &- guards : 0
  }
  /// What mallinfo2 and the statistics count as the page heap's free
  /// bytes: free spans, kept spans (less their guard pages) and guard pages.
  @inline(__always) var unusedBytes: UInt { freeBytes &+ guardedBytes &+ guardBytes }
}
