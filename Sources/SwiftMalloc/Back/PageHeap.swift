import CShim

/// The page heap: free spans, split to serve a request and coalesced with
/// free neighbours on return. All of it runs under the page-heap lock.
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
///   stale slot is told apart by `covers` (the span does not contain it).
/// - state.freeBytes / cleanBytes are the sums over the free spans.
/// - The sbrk top span never holds more than M_TRIM_THRESHOLD free bytes after
///   a free: the excess goes back with a negative sbrk (keeping M_TOP_PAD).
enum PageHeap {
  static let exactLists = 128
  static let listsOffset = 8192

  @inline(__always)
  static var lists: UnsafeMutablePointer<SpanList> { Heap.region(at: listsOffset, as: SpanList.self) }

  @inline(__always) static var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(swm_lock_index_pageheap()) }

  // MARK: - entry points that take the lock

  /// A medium block: a page run of at least `size` bytes aligned to
  /// `alignment` (a power of two >= the page size). `zeroed`: when not nil,
  /// the block must read zero; the memset is skipped for clean pages.
  /// In secure mode the run gets one more page, made a guard.
  static func allocateRun(_ size: UInt, alignment: UInt, zeroed: Bool?) -> RawPtr? {
    let pages = max(1, (size &+ OSMemory.pageMask) &>> OSMemory.pageShift)
    let guardPage = Heap.state.pointee.secure != 0
    swm_lock(lock)
    let span = allocateAligned(pages: guardPage ? pages &+ 1 : pages, alignment: alignment)
    swm_unlock(lock)
    guard let span else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    span.pointee.kind = SpanKind.pageRun
    let p = RawPtr(bitPattern: span.pointee.start)!
    if zeroed == true && !span.pointee.clean { p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(pages &<< OSMemory.pageShift)) }
    span.pointee.clean = false
    if guardPage { protectLastPage(span) }
    return p
  }

  /// The guard exists only if it could be made (see swm_guard_install: it
  /// fails at a limit or once the mapping budget is spent); without it the
  /// extra page is simply part of the span.
  static func protectLastPage(_ span: SpanPtr) {
    span.pointee.guarded =
      swm_guard_install(RawPtr(bitPattern: span.pointee.end &- OSMemory.pageSize), Int(OSMemory.pageSize)) != 0
  }

  static func freeRun(_ span: SpanPtr) {
    swm_lock(lock)
    release(span)
    swm_unlock(lock)
  }

  /// A span of `pages` pages for a central list (kind and class set by the
  /// caller), plus a guard page after them when `guardPage`.
  static func allocateSpan(pages: UInt, guardPage: Bool = false) -> SpanPtr? {
    swm_lock(lock)
    let span = allocateAligned(pages: guardPage ? pages &+ 1 : pages, alignment: OSMemory.pageSize)
    swm_unlock(lock)
    if let span, guardPage { protectLastPage(span) }
    return span
  }

  static func freeSpan(_ span: SpanPtr) {
    swm_lock(lock)
    release(span)
    swm_unlock(lock)
  }

  /// Grows a page run in place to `pages` pages when the pages after it are
  /// free; false otherwise.
  static func tryGrowInPlace(_ span: SpanPtr, pages: UInt) -> Bool {
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
  static func shrinkInPlace(_ span: SpanPtr, pages: UInt) {
    swm_lock(lock)
    if let tail = split(span, keeping: pages) { release(tail) }
    swm_unlock(lock)
  }

  /// malloc_trim: gives back the sbrk top beyond `pad` and decommits every
  /// other free span. True when anything was released.
  static func trim(pad: UInt) -> Bool {
    swm_lock(lock)
    defer { swm_unlock(lock) }
    var released = false
    if let top = PageMap.lookup(Heap.state.pointee.sbrkEnd &- 1), top.pointee.kind == SpanKind.free {
      removeFree(top)
      if let kept = trimTop(top, threshold: pad, pad: pad, released: &released) { insertFree(kept) }
    }
    released = decommit(keeping: 0, olderThan: nil) || released
    return released
  }

  // MARK: - under the lock

  static func allocateAligned(pages: UInt, alignment: UInt) -> SpanPtr? {
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

  /// Whether `span` contains `address`: false for a stale page-map slot
  /// inside a free span (see the invariants above).
  @inline(__always)
  static func covers(_ span: SpanPtr, _ address: UInt) -> Bool {
    address &- span.pointee.start < span.pointee.bytes
  }

  /// Removes a free span of at least `pages` pages from the lists, cut to
  /// exactly `pages` (kind still free, to be set by the caller).
  static func take(pages: UInt) -> SpanPtr? {
    var found = findFree(pages)
    if found == nil {
      guard let region = OSMemory.grow(bytes: pages &<< OSMemory.pageShift) else { return nil }
      if addRegion(region) == nil { return nil }
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
  /// has one; beyond the exact lists, the highest-addressed span that fits.
  /// Large runs placed high keep the top of the sbrk heap in use, so free
  /// space gathers below it (reused, and decommitted by decay) instead of at
  /// the top, where each trim would give pages back only for the next large
  /// request to fault them in again (a churn of 1-4 MiB blocks took 4x the
  /// page faults with best fit).
  private static func findFree(_ pages: UInt) -> SpanPtr? {
    let l = lists
    if pages <= UInt(exactLists) {
      var n = Int(pages)
      while n <= exactLists {
        if let s = l[n].head { return s }
        n &+= 1
      }
    }
    var best: SpanPtr? = nil
    var cursor = l[0].head
    while let s = cursor {
      if s.pointee.pages >= pages && (best == nil || s.pointee.start > best!.pointee.start) { best = s }
      cursor = s.pointee.next
    }
    return best
  }

  /// Registers fresh OS memory as a free span, merged with the free spans on
  /// either side (mmap regions often land just below the previous one).
  private static func addRegion(_ region: OSMemory.Region) -> SpanPtr? {
    guard let span = Meta.allocSpan() else { return nil }
    span.pointee.start = region.start
    span.pointee.pages = region.bytes &>> OSMemory.pageShift
    span.pointee.fromSbrk = region.fromSbrk
    span.pointee.clean = true
    span.pointee.kind = SpanKind.free
    if !PageMap.set(span.pointee.start, pages: span.pointee.pages, to: span) {
      Meta.freeSpan(span)
      return nil
    }
    release(span, touched: false, trim: false)
    return span
  }

  /// Cuts `span` after `keeping` pages; the tail becomes a new span of the
  /// same kind and origin, registered in the page map. nil if no struct.
  static func split(_ span: SpanPtr, keeping: UInt) -> SpanPtr? {
    guard let tail = Meta.allocSpan() else { return nil }
    tail.pointee.start = span.pointee.start &+ (keeping &<< OSMemory.pageShift)
    tail.pointee.pages = span.pointee.pages &- keeping
    tail.pointee.kind = span.pointee.kind
    tail.pointee.fromSbrk = span.pointee.fromSbrk
    tail.pointee.clean = span.pointee.clean
    tail.pointee.freedAt = span.pointee.freedAt
    span.pointee.pages = keeping
    PageMap.setEdges(tail)  // the caller frees the tail or writes all its pages
    return tail
  }

  /// Returns a span that is not on any list to the heap: coalesce, trim, file.
  /// `touched`: the pages were handed out (so no longer known to be clean).
  /// `trim`: false for memory just taken from the OS, which must not be
  /// given back before the request that grew the heap is served.
  static func release(_ spanIn: SpanPtr, touched: Bool = true, trim: Bool = true) {
    var span = spanIn
    if span.pointee.sizeClass != 0 { PageMap.setSmall(span, clear: true) }
    if span.pointee.guarded {
      // A guard that cannot be made writable again (mprotect fails at a
      // limit) must never be handed out: the span stays out of the heap.
      // The rest of the span is released; the guard page stays apart, a
      // one-page span of its own that nothing can free.
      if swm_guard_remove(RawPtr(bitPattern: span.pointee.end &- OSMemory.pageSize), Int(OSMemory.pageSize)) != 0 {
        guard span.pointee.pages > 1, let stuck = split(span, keeping: span.pointee.pages &- 1) else {
          span.pointee.kind = SpanKind.pageRun
          return
        }
        stuck.pointee.kind = SpanKind.pageRun
        stuck.pointee.guarded = false
      }
      span.pointee.guarded = false
    }
    span.pointee.kind = SpanKind.free
    span.pointee.sizeClass = 0
    span.pointee.freeList = nil
    span.pointee.used = 0
    span.pointee.onList = false
    if touched {
      span.pointee.clean = false
      span.pointee.freedAt = UInt32(truncatingIfNeeded: swm_now_ms())
    }
    let freedStart = span.pointee.start
    if let left = PageMap.lookup(span.pointee.start &- 1), left.pointee.kind == SpanKind.free,
       left.pointee.end == span.pointee.start, left.pointee.fromSbrk == span.pointee.fromSbrk {
      removeFree(left)
      left.pointee.pages &+= span.pointee.pages
      left.pointee.freedAt = newerDirty(left, span)
      left.pointee.clean = left.pointee.clean && span.pointee.clean
      Meta.freeSpan(span)
      span = left
    }
    if let right = PageMap.lookup(span.pointee.end), right.pointee.kind == SpanKind.free,
       right.pointee.start == span.pointee.end, right.pointee.fromSbrk == span.pointee.fromSbrk {
      removeFree(right)
      PageMap.setPage(right.pointee.start, to: span)
      span.pointee.pages &+= right.pointee.pages
      span.pointee.freedAt = newerDirty(span, right)
      span.pointee.clean = span.pointee.clean && right.pointee.clean
      Meta.freeSpan(right)
    }
    PageMap.setPage(freedStart, to: span)  // a second free of this block finds a free span
    PageMap.setEdges(span)
    var released = false
    let state = Heap.state
    guard let kept = trim ? trimTop(span, threshold: state.pointee.trimThreshold, pad: state.pointee.topPad,
                                    released: &released) : span else { return }
    insertFree(kept)
    let dirty = state.pointee.freeBytes &- state.pointee.cleanBytes
    let cap = dirtyCap()
    if dirty > cap {
      _ = decommit(keeping: cap / 2, olderThan: nil)
    } else if dirty > 0 {
      let now = UInt(swm_now_ms())
      if now &- state.pointee.lastDecay >= Options.decayMilliseconds / 4 {
        state.pointee.lastDecay = now
        _ = decommit(keeping: 0, olderThan: UInt32(truncatingIfNeeded: now &- Options.decayMilliseconds))
      }
    }
  }

  /// How many dirty free bytes may stay resident: half of the heap, at
  /// least dirtyLimit. Below it, pages are decommitted once they have been
  /// free for Options.decayMilliseconds (checked as spans are freed).
  static func dirtyCap() -> UInt {
    let state = Heap.state
    return max(state.pointee.dirtyLimit, (state.pointee.sbrkBytes &+ state.pointee.regionMmapBytes) / 2)
  }

  /// The freedAt of two merged spans: the more recent dirty one.
  private static func newerDirty(_ a: SpanPtr, _ b: SpanPtr) -> UInt32 {
    if a.pointee.clean { return b.pointee.freedAt }
    if b.pointee.clean { return a.pointee.freedAt }
    let (x, y) = (a.pointee.freedAt, b.pointee.freedAt)
    return Int32(bitPattern: x &- y) > 0 ? x : y
  }

  /// If `span` (not on a list) is the top of the sbrk heap and holds more than
  /// `threshold` bytes, shrinks the heap to keep `pad` of it. Returns what is
  /// left of the span, nil when nothing is.
  private static func trimTop(_ span: SpanPtr, threshold: UInt, pad: UInt, released: inout Bool) -> SpanPtr? {
    let state = Heap.state
    guard span.pointee.fromSbrk, span.pointee.end == state.pointee.sbrkEnd,
          span.pointee.bytes > threshold else { return span }
    let keepPages = min((pad &+ OSMemory.pageMask) &>> OSMemory.pageShift, span.pointee.pages)
    let releasePages = span.pointee.pages &- keepPages
    if releasePages == 0 { return span }
    let releaseStart = span.pointee.start &+ (keepPages &<< OSMemory.pageShift)
    guard OSMemory.shrinkSbrk(to: releaseStart) else { return span }
    _ = PageMap.set(releaseStart, pages: releasePages, to: nil)
    released = true
    span.pointee.pages = keepPages
    if keepPages == 0 {
      Meta.freeSpan(span)
      return nil
    }
    PageMap.setEdges(span)
    return span
  }

  /// Decommits free spans (largest lists first) until at most `keeping`
  /// dirty free bytes remain; with `olderThan`, only spans dirty since before
  /// that time. True when anything was decommitted.
  static func decommit(keeping: UInt, olderThan: UInt32?) -> Bool {
    let state = Heap.state
    let l = lists
    var any = false
    var n = 0
    var order = 0  // 0 first, then exactLists down to 1
    while order <= exactLists {
      n = order == 0 ? 0 : exactLists &- order &+ 1
      var cursor = l[n].head
      while let s = cursor, state.pointee.freeBytes &- state.pointee.cleanBytes > keeping {
        if !s.pointee.clean && (olderThan == nil || Int32(bitPattern: olderThan! &- s.pointee.freedAt) >= 0) {
          _ = swm_sys_decommit(RawPtr(bitPattern: s.pointee.start), Int(s.pointee.bytes))
          s.pointee.clean = true
          state.pointee.cleanBytes &+= s.pointee.bytes
          any = true
        }
        cursor = s.pointee.next
      }
      order &+= 1
    }
    return any
  }

  static func insertFree(_ span: SpanPtr) {
    span.pointee.kind = SpanKind.free
    let n = span.pointee.pages <= UInt(exactLists) ? Int(span.pointee.pages) : 0
    lists[n].push(span)
    let state = Heap.state
    state.pointee.freeBytes &+= span.pointee.bytes
    if span.pointee.clean { state.pointee.cleanBytes &+= span.pointee.bytes }
  }

  static func removeFree(_ span: SpanPtr) {
    let n = span.pointee.pages <= UInt(exactLists) ? Int(span.pointee.pages) : 0
    lists[n].remove(span)
    let state = Heap.state
    state.pointee.freeBytes &-= span.pointee.bytes
    if span.pointee.clean { state.pointee.cleanBytes &-= span.pointee.bytes }
  }

  /// Bytes of the free span at the top of the sbrk heap (keepcost).
  static func topFreeBytes() -> UInt {
    guard let top = PageMap.lookup(Heap.state.pointee.sbrkEnd &- 1), top.pointee.kind == SpanKind.free else { return 0 }
    return top.pointee.bytes
  }
}
