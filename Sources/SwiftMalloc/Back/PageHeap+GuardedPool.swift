import CShim

// See Malloc.swift for an overview.

/// Secure mode's guarded spans kept for reuse: a small span (a central
/// list's) that comes back with its guard page in place waits here, guard
/// and all, for the next span of the same length, instead of two system
/// calls (removing the guard on release, installing one on the next span).
/// A longer kept span serves a shorter one with its last pages. A program
/// whose size classes take turns (bench's `frag`: bands of sizes in rounds)
/// made 23,000 guard calls a run, 1.05x hardened_malloc's time, whose guard
/// slabs are permanent.
///
/// Invariants (page-heap lock): `guardedLists[n]` holds spans of n pages
/// (guard included), each of kind `pooled`, guarded, on no other list, its
/// pages named in the page map by it (so a free of any of its addresses
/// finds a span that is not live); `guardedBytes` is the sum of their bytes,
/// at most `guardedLimit`, and with the dirty free bytes within the dirty
/// cap when kept (so in secure mode within the peak in use); they count as
/// free in mallinfo2, the statistics and the dirty cap. Emptied by malloc_trim, by the decay, and when the source
/// has no more memory to give.
extension PageHeap {
  /// Keeps `span` (a small span being released, its facts cleared) with its
  /// guard; false when the pool is full or the span is not one to keep.
  func keepGuarded(_ span: SpanPtr) -> Bool {
    let pages = span.pointee.pages
    if pages >= UInt(PageHeapState.guardedListCount) || span.pointee.kind != SpanKind.small { return false }
    // kept spans are resident like dirty free pages, and share their cap
    // (within the peak in use, in secure mode), up to guardedLimit
    let kept = state.pointee.guardedBytes &+ span.pointee.bytes
    if kept > PageHeapState.guardedLimit
      || state.pointee.freeBytes &- state.pointee.cleanBytes &+ kept > dirtyCap() { return false }
    span.pointee.kind = SpanKind.pooled
    span.pointee.sizeClass = 0
    span.pointee.freeList = nil
    span.pointee.used = 0
    span.pointee.onList = false
    guardedList(pages).pointee.push(span)
    state.pointee.guardedBytes &+= span.pointee.bytes
    return true
  }

  /// A kept span of `pages` pages (its guard included), nil when none
  /// (lock held): one of exactly that length, else the last `pages` pages
  /// of the shortest longer one, whose guard they keep, the rest going
  /// back to the page heap (no guard there, so no system call either).
  func takeGuarded(pages: UInt) -> SpanPtr? {
    var n = pages
    while n < UInt(PageHeapState.guardedListCount) {
      let list = guardedList(n)
      if let span = list.pointee.head {
        list.pointee.remove(span)
        state.pointee.guardedBytes &-= span.pointee.bytes
        return n == pages ? reuse(span) : cut(span, to: pages)
      }
      n &+= 1
    }
    return nil
  }

  @inline(__always)
  private func reuse(_ span: SpanPtr) -> SpanPtr {
    span.pointee.kind = 0
    return span
  }

  /// The last `pages` pages of a kept span (with its guard); the head goes
  /// back to the page heap. nil (the span given back whole) without a struct.
  private func cut(_ span: SpanPtr, to pages: UInt) -> SpanPtr? {
    guard let tail = split(span, keeping: span.pointee.pages &- pages) else {
      span.pointee.kind = SpanKind.pageRun
      release(span)
      return nil
    }
    tail.pointee.guarded = true
    tail.pointee.kind = 0
    _ = PageMap.set(tail.pointee.start, pages: pages, to: tail)
    span.pointee.guarded = false
    span.pointee.kind = SpanKind.pageRun
    release(span)
    return tail
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
        state.pointee.guardedBytes &-= span.pointee.bytes
        span.pointee.kind = SpanKind.pageRun  // not small: released, not kept again
        release(span)
      }
      n &+= 1
    }
    return true
  }

  @inline(__always)
  private func guardedList(_ pages: UInt) -> UnsafeMutablePointer<SpanList> {
    UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &state.pointee.guardedLists) { $0 })
      .assumingMemoryBound(to: SpanList.self) + Int(pages)
  }
}
