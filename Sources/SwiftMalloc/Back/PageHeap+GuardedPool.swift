import CShim

// See Malloc.swift for an overview.

/// Secure mode's guarded spans kept for reuse: a small span (a central
/// list's) that comes back with its guard page in place waits here, guard
/// and all, for the next span of the same length, instead of two system
/// calls (removing the guard on release, installing one on the next span).
/// A program whose size classes take turns (bench's `frag`: bands of sizes
/// in rounds) made 27,475 guard calls a run, 1.09x hardened_malloc's time
/// (whose guard slabs are permanent); with kept spans 19,944 and 1.04x.
///
/// Invariants (page-heap lock): `guardedLists[n]` holds spans of n pages
/// (guard included), each of kind `pooled`, guarded, on no other list, its
/// pages named in the page map by it (so a free of any of its addresses
/// finds a span that is not live); `guardedBytes` is the sum of their bytes
/// less their guard pages (which `guardBytes` counts), at most
/// `guardedLimit`, and with the dirty free bytes within the dirty cap when
/// kept (so in secure mode within the peak in use); they are not in use for
/// mallinfo2, the statistics and the dirty cap. All of them go back (guards
/// removed, so that they coalesce) before the heap grows for a run no free
/// span holds, on malloc_trim and with the decay: giving back one at a
/// time, or cutting a longer one for a shorter span, left heads no span of
/// their length could use (the heap doubled in a test alternating two
/// classes' spans; an address-space limit was met at half the memory).
extension PageHeap {
  /// Keeps `span` (a small span being released, its facts cleared) with its
  /// guard; false when the pool is full or the span is not one to keep.
  func keepGuarded(_ span: SpanPtr) -> Bool {
    let pages = span.pointee.pages
    if pages >= UInt(PageHeapState.guardedListCount) || span.pointee.kind != SpanKind.small { return false }
    // kept spans are resident like dirty free pages, and share their cap
    // (within the peak in use, in secure mode), up to guardedLimit
    let kept = state.pointee.guardedBytes &+ keptBytes(span)
    if kept > PageHeapState.guardedLimit
      || state.pointee.dirtyBytes &+ kept > dirtyCap() { return false }
    span.pointee.kind = SpanKind.pooled
    span.pointee.sizeClass = 0
    span.pointee.freeList = nil
    span.pointee.used = 0
    span.pointee.onList = false
    guardedList(pages).pointee.push(span)
    state.pointee.guardedBytes = kept
    return true
  }

  /// A kept span of exactly `pages` pages (its guard included), nil when
  /// none (lock held).
  func takeGuarded(pages: UInt) -> SpanPtr? {
    if pages >= UInt(PageHeapState.guardedListCount) { return nil }
    let list = guardedList(pages)
    guard let span = list.pointee.head else { return nil }
    list.pointee.remove(span)
    state.pointee.guardedBytes &-= keptBytes(span)
    span.pointee.kind = 0
    return span
  }

  private func giveBack(_ span: SpanPtr) {
    state.pointee.guardedBytes &-= keptBytes(span)
    release(span)  // pooled, not small: released, not kept again
  }

  /// Gives every kept span back to the page heap (guard removed,
  /// coalesced); true when there were any (lock held).
  @discardableResult
  func drainGuarded() -> Bool {
    if state.pointee.guardedBytes == 0 { return false }
    var n = 1
    while n < PageHeapState.guardedListCount {
      let list = guardedList(UInt(n))
      while let span = list.pointee.head {
        list.pointee.remove(span)
        giveBack(span)
      }
      n &+= 1
    }
    return true
  }

  /// What a kept span adds to `guardedBytes`: its bytes less its guard
  /// page (which `guardBytes` counts).
  @inline(__always)
  func keptBytes(_ span: SpanPtr) -> UInt { span.pointee.bytes &- OSMemory.pageSize }

  /// The list of kept spans of `pages` pages (1 ..< guardedListCount).
  @inline(__always)
  func guardedList(_ pages: UInt) -> UnsafeMutablePointer<SpanList> {
    UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &state.pointee.guardedLists) { $0 })
      .assumingMemoryBound(to: SpanList.self) + Int(pages)
  }
}
