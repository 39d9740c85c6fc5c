import CShim

// See Malloc.swift for an overview.

/// The page heap: free spans, split to serve a request and coalesced with
/// free neighbours on return. A value of it is a handle on its site
/// (PageSource.swift): its state, its lock, and the page source it is
/// handed (where fresh pages come from and how they go back). The process
/// has one, Heap.pageHeap (its state in HeapState, over OSMemory, behind
/// the page-heap lock); a unit test builds its own over a buffer. It
/// reaches below it only through `source`; the page map and the metadata
/// arena (Span structs) it shares with every page heap, since they are
/// indexed by address and each page heap's pages are its own.
///
/// Invariants (lock held):
/// - `lists[n]` for 1 <= n <= exactLists holds free spans of exactly n pages;
///   `lists[0]` holds the longer ones.
/// - No two free spans of the same origin (sbrk or mmap) are adjacent: free()
///   coalesces at once.
/// - Page map: every page of an allocated span (small or page run) names it;
///   a free span is named by its first and last page (all that coalescing
///   and trimming look up), and by the first page of every block freed into
///   it, while its other pages may still name spans they belonged to before
///   (never with small-block facts). So splitting and merging free spans
///   writes two slots instead of one per page, and a lookup that lands on a
///   stale slot is told apart by `Span.covers` (the span does not contain it).
/// - state.freeBytes is the sum of the free spans' bytes, cleanBytes the
///   sum of their bytes outside their dirty extents (Span.dirtyFrom).
/// - The top span (ending at source.topEnd) never holds more than
///   M_TRIM_THRESHOLD free bytes after a free: the excess goes back with
///   source.shrinkTop (keeping M_TOP_PAD).
struct PageHeap<Site: PageHeapSite> {
  let site: Site

  @inline(__always) var state: UnsafeMutablePointer<PageHeapState> { site.state }
  @inline(__always) var lock: UnsafeMutablePointer<swm_lock_t> { site.lock }
  /// The layer below: every page comes from it and goes back to it.
  @inline(__always) var source: Site.Source { site.source }

  @inline(__always) var exactLists: Int { PageHeapState.exactLists }

  @inline(__always)
  var lists: UnsafeMutablePointer<SpanList> {
    UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &state.pointee.lists) { $0 }).assumingMemoryBound(to: SpanList.self)
  }

  // MARK: - entry points that take the lock

  /// A medium block: a page run of at least `size` bytes aligned to
  /// `alignment` (a power of two >= the page size). `zeroed`: when not nil,
  /// the block must read zero; only its dirty extent is cleared.
  /// `guardPage` (secure mode): the run gets one more page, made a guard.
  /// nil with ENOMEM set when the source has no more pages.
  func allocateRun(_ size: UInt, alignment: UInt, zeroed: Bool?, guardPage: Bool) -> RawPtr? {
    let pages = max(1, (size &+ OSMemory.pageMask) &>> OSMemory.pageShift)
    swm_lock(lock)
    let span = allocateAligned(pages: guardPage ? pages &+ 1 : pages, alignment: alignment)
    if state.pointee.dirtyWithinPeak { keepWithinPeak(unguarded: guardPage ? OSMemory.pageSize : 0) }
    swm_unlock(lock)
    guard let span else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    span.pointee.kind = SpanKind.pageRun
    let p = RawPtr(bitPattern: span.pointee.start)!
    let (from, to) = (span.pointee.dirtyFrom, min(span.pointee.dirtyTo, pages))
    if zeroed == true && to > from {
      (p + Int(from &<< OSMemory.pageShift)).initializeMemory(as: UInt8.self, repeating: 0, count: Int((to &- from) &<< OSMemory.pageShift))
    }
    if guardPage { protectLastPage(span) }
    return p
  }

  /// The guard exists only if it could be made (see swm_guard_install: it
  /// fails at a limit or once the mapping budget is spent); without it the
  /// extra page is simply part of the span.
  func protectLastPage(_ span: SpanPtr) {
    _ = swm_atomic_add(&state.pointee.guardCalls, 1)
    span.pointee.guarded = source.installGuard(span.pointee.end &- OSMemory.pageSize, bytes: OSMemory.pageSize)
    if span.pointee.guarded { _ = swm_atomic_add(&state.pointee.guardBytes, OSMemory.pageSize) }
  }

  /// A span of `pages` pages for a central list (kind and class set by the
  /// caller), plus a guard page after them when `guardPage`; nil when the
  /// source has no more pages.
  func allocateSpan(pages: UInt, guardPage: Bool = false) -> SpanPtr? {
    swm_lock(lock)
    if guardPage, let kept = takeGuarded(pages: pages &+ 1) {
      if state.pointee.dirtyWithinPeak { notePeak(span: kept, guardPage: true) }
      swm_unlock(lock)
      return kept
    }
    let span = allocateAligned(pages: guardPage ? pages &+ 1 : pages, alignment: OSMemory.pageSize)
    if let span, state.pointee.dirtyWithinPeak { notePeak(span: span, guardPage: guardPage) }
    swm_unlock(lock)
    if let span, guardPage { protectLastPage(span) }
    return span
  }

  func freeSpan(_ span: SpanPtr) {
    swm_lock(lock)
    release(span)
    swm_unlock(lock)
  }

  /// Grows a page run in place to `pages` pages when the pages after it are
  /// free; false otherwise.
  func tryGrowInPlace(_ span: SpanPtr, pages: UInt) -> Bool {
    swm_lock(lock)
    defer { swm_unlock(lock) }
    let extra = pages &- span.pointee.pages
    guard let right = PageMap.lookup(span.pointee.end), right.pointee.kind == SpanKind.free,
          right.pointee.start == span.pointee.end, right.pointee.fromSbrk == span.pointee.fromSbrk,
          right.pointee.pages >= extra else { return false }
    removeFree(right)
    if right.pointee.pages > extra {
      guard let rest = split(right, keeping: extra) else { insertFree(right); return false }
      insertFree(rest)
    }
    _ = PageMap.set(right.pointee.start, pages: extra, to: span)
    span.pointee.pages = pages
    Meta.freeSpan(right)
    return true
  }

  /// Shrinks a page run in place to `pages` pages; the tail is freed.
  func shrinkInPlace(_ span: SpanPtr, pages: UInt) {
    swm_lock(lock)
    if let tail = split(span, keeping: pages) { release(tail) }
    swm_unlock(lock)
  }

  // MARK: - under the lock

  func allocateAligned(pages: UInt, alignment: UInt) -> SpanPtr? {
    let alignPages = alignment &>> OSMemory.pageShift
    let want = pages &+ (alignPages > 1 ? alignPages &- 1 : 0)
    guard var span = take(pages: want) else { return nil }
    if alignPages > 1 {
      let aligned = (span.pointee.start &+ alignment &- 1) & ~(alignment &- 1)
      let lead = (aligned &- span.pointee.start) &>> OSMemory.pageShift
      if lead > 0 {
        guard let body = split(span, keeping: lead) else { release(span, touched: false); return nil }
        release(span, touched: false)
        span = body
      }
    }
    if span.pointee.pages > pages, let tail = split(span, keeping: pages) { release(tail, touched: false) }
    _ = PageMap.set(span.pointee.start, pages: span.pointee.pages, to: span)  // addRegion made the leaves
    return span
  }

  /// Removes a free span of at least `pages` pages from the lists, cut to
  /// exactly `pages` (kind still free, to be set by the caller).
  func take(pages: UInt) -> SpanPtr? {
    var found = findFree(pages)
    if found == nil && drainGuarded() { found = findFree(pages) }  // secure mode's kept spans
    if found == nil {
      guard let region = source.grow(bytes: pages &<< OSMemory.pageShift, pad: state.pointee.topPad) else { return nil }
      if addRegion(region) == nil { return nil }
      source.grew()
      found = findFree(pages)
    }
    guard let span = found else { return nil }
    removeFree(span)
    if span.pointee.pages > pages {
      if let rest = split(span, keeping: pages) { insertFree(rest) }
      else { insertFree(span); return nil }
    }
    span.pointee.kind = 0
    return span
  }

  /// A free span of at least `pages` pages: the smallest exact list that
  /// has one; beyond the exact lists, the span that fits with the most
  /// resident (dirty) pages for the run (up to its length), the highest of
  /// equals. Runs placed high keep the top of the sbrk heap in use, so free
  /// space gathers below it (reused, and decommitted by decay) instead of at
  /// the top, where each trim would give pages back only for the next large
  /// request to fault them in again (docs/design.md).
  private func findFree(_ pages: UInt) -> SpanPtr? {
    let l = lists
    if pages <= UInt(exactLists) {
      var n = Int(pages)
      while n <= exactLists {
        if let s = l[n].head { return s }
        n &+= 1
      }
    }
    // resident pages first: a decommitted or fresh page faults in again
    var best: SpanPtr? = nil
    var bestResident: UInt = 0
    var cursor = l[0].head
    while let s = cursor {
      if s.pointee.pages >= pages {
        let resident = min(s.pointee.dirtyPages, pages)
        if best == nil || resident > bestResident
          || (resident == bestResident && s.pointee.start > best.unsafelyUnwrapped.pointee.start) {
          best = s
          bestResident = resident
        }
      }
      cursor = s.pointee.next
    }
    return best
  }

  /// Registers fresh OS memory as a free span, merged with the free spans on
  /// either side (mmap regions often land just below the previous one).
  private func addRegion(_ region: OSMemory.Region) -> SpanPtr? {
    guard let span = Meta.allocSpan() else { return nil }
    span.pointee.start = region.start
    span.pointee.pages = region.bytes &>> OSMemory.pageShift
    span.pointee.fromSbrk = region.fromSbrk
    span.pointee.setClean()
    span.pointee.kind = SpanKind.free
    if !PageMap.set(span.pointee.start, pages: span.pointee.pages, to: span) {
      Meta.freeSpan(span)
      return nil
    }
    state.pointee.heapBytes &+= region.bytes
    release(span, touched: false, trim: false)
    return span
  }

  /// Cuts `span` after `keeping` pages; the tail becomes a new span of the
  /// same kind and origin, registered in the page map, each part keeping
  /// its share of the dirty extent. nil if no struct.
  func split(_ span: SpanPtr, keeping: UInt) -> SpanPtr? {
    guard let tail = Meta.allocSpan() else { return nil }
    tail.pointee.start = span.pointee.start &+ (keeping &<< OSMemory.pageShift)
    tail.pointee.pages = span.pointee.pages &- keeping
    tail.pointee.kind = span.pointee.kind
    tail.pointee.fromSbrk = span.pointee.fromSbrk
    let (from, to) = (span.pointee.dirtyFrom, span.pointee.dirtyTo)
    tail.pointee.setDirty(from: max(from, keeping) &- keeping, to: max(to, keeping) &- keeping)
    tail.pointee.freedAt = span.pointee.freedAt
    span.pointee.pages = keeping
    span.pointee.setDirty(from: from, to: min(to, keeping))
    PageMap.setEdges(tail)  // the caller frees the tail or writes all its pages
    return tail
  }

  /// Returns a span that is not on any list to the heap: coalesce, trim, file.
  /// `touched`: the pages were handed out (so all dirty); otherwise the
  /// span's dirty extent holds.
  /// `trim`: false for memory just taken from the OS, which must not be
  /// given back before the request that grew the heap is served.
  func release(_ spanIn: SpanPtr, touched: Bool = true, trim: Bool = true) {
    if spanIn.pointee.kind == SpanKind.small && state.pointee.dirtyWithinPeak { forgetSpan(spanIn) }
    if spanIn.pointee.sizeClass != 0 { PageMap.setSmall(spanIn, clear: true) }
    if spanIn.pointee.guarded && keepGuarded(spanIn) { return }  // secure mode
    if spanIn.pointee.guarded && !removeGuard(spanIn) { return }
    spanIn.pointee.kind = SpanKind.free
    spanIn.pointee.sizeClass = 0
    spanIn.pointee.freeList = nil
    spanIn.pointee.used = 0
    spanIn.pointee.onList = false
    if touched {
      spanIn.pointee.setAllDirty()
      spanIn.pointee.freedAt = UInt32(truncatingIfNeeded: source.now())
    }
    let freedStart = spanIn.pointee.start
    let span = coalesce(spanIn)
    PageMap.setPage(freedStart, to: span)  // a second free of this block finds a free span
    PageMap.setEdges(span)
    var released = false
    guard let kept = trim ? trimTop(span, threshold: state.pointee.trimThreshold, pad: state.pointee.topPad,
                                    released: &released) : span else { return }
    insertFree(kept)
    decay()
  }

  /// Makes a span's guard page ordinary memory again. A guard that cannot
  /// be made writable (mprotect fails at a limit) must never be handed out:
  /// the rest of the span goes on, and the guard page stays apart, a
  /// one-page span of its own that nothing can free. False when nothing of
  /// the span is left to release.
  private func removeGuard(_ span: SpanPtr) -> Bool {
    defer { span.pointee.guarded = false }
    _ = swm_atomic_add(&state.pointee.guardBytes, 0 &- OSMemory.pageSize)
    _ = swm_atomic_add(&state.pointee.guardCalls, 1)
    if source.removeGuard(span.pointee.end &- OSMemory.pageSize, bytes: OSMemory.pageSize) {
      return true
    }
    guard span.pointee.pages > 1, let stuck = split(span, keeping: span.pointee.pages &- 1) else {
      span.pointee.kind = SpanKind.pageRun
      return false
    }
    stuck.pointee.kind = SpanKind.pageRun
    stuck.pointee.guarded = false
    return true
  }

  /// Merges a span being freed with the free spans on either side of the
  /// same origin; returns the span that covers them all (not on a list).
  private func coalesce(_ spanIn: SpanPtr) -> SpanPtr {
    var span = spanIn
    if let left = PageMap.lookup(span.pointee.start &- 1), left.pointee.kind == SpanKind.free,
       left.pointee.end == span.pointee.start, left.pointee.fromSbrk == span.pointee.fromSbrk {
      removeFree(left)
      left.pointee.freedAt = newerDirty(left, span)
      mergeExtents(left, span)
      left.pointee.pages &+= span.pointee.pages
      Meta.freeSpan(span)
      span = left
    }
    if let right = PageMap.lookup(span.pointee.end), right.pointee.kind == SpanKind.free,
       right.pointee.start == span.pointee.end, right.pointee.fromSbrk == span.pointee.fromSbrk {
      removeFree(right)
      PageMap.setPage(right.pointee.start, to: span)
      span.pointee.freedAt = newerDirty(span, right)
      mergeExtents(span, right)
      span.pointee.pages &+= right.pointee.pages
      Meta.freeSpan(right)
    }
    return span
  }

  /// The dirty extent of `left` once `right` (its neighbour) is merged into
  /// it: the hull of both (call before `left` grows).
  private func mergeExtents(_ left: SpanPtr, _ right: SpanPtr) {
    if right.pointee.clean { return }
    let shift = left.pointee.pages
    let (from, to) = (right.pointee.dirtyFrom &+ shift, right.pointee.dirtyTo &+ shift)
    if left.pointee.clean { left.pointee.setDirty(from: from, to: to); return }
    left.pointee.setDirty(from: min(left.pointee.dirtyFrom, from), to: max(left.pointee.dirtyTo, to))
  }

  /// The freedAt of two merged spans: the more recent dirty one.
  private func newerDirty(_ a: SpanPtr, _ b: SpanPtr) -> UInt32 {
    if a.pointee.clean { return b.pointee.freedAt }
    if b.pointee.clean { return a.pointee.freedAt }
    let (x, y) = (a.pointee.freedAt, b.pointee.freedAt)
    return Int32(bitPattern: x &- y) > 0 ? x : y
  }

  func insertFree(_ span: SpanPtr) {
    span.pointee.kind = SpanKind.free
    let n = span.pointee.pages <= UInt(exactLists) ? Int(span.pointee.pages) : 0
    lists[n].push(span)
    state.pointee.freeBytes &+= span.pointee.bytes
    state.pointee.cleanBytes &+= span.pointee.bytes &- span.pointee.dirtyBytes
  }

  func removeFree(_ span: SpanPtr) {
    let n = span.pointee.pages <= UInt(exactLists) ? Int(span.pointee.pages) : 0
    lists[n].remove(span)
    state.pointee.freeBytes &-= span.pointee.bytes
    state.pointee.cleanBytes &-= span.pointee.bytes &- span.pointee.dirtyBytes
  }

  /// Bytes of the free span at the top (keepcost), lock held.
  func topFreeBytes() -> UInt {
    guard let top = PageMap.lookup(source.topEnd &- 1), top.pointee.kind == SpanKind.free else { return 0 }
    return top.pointee.bytes
  }
}
