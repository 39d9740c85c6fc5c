import CShim

// See Malloc.swift for an overview.

/// The page heap's way back to its source (page-heap lock held unless
/// said): the top beyond M_TRIM_THRESHOLD is cut (source.shrinkTop: a
/// negative sbrk); other free pages stay resident (dirty) for reuse and are
/// decommitted (source.decommit: madvise(MADV_DONTNEED)) once they have been
/// free for the decay time, or at once beyond dirtyCap, or by malloc_trim.
/// Times come from source.now().
extension PageHeap {
  /// malloc_trim: gives back the sbrk top beyond `pad` and decommits every
  /// other free span. True when anything was released.
  func trim(pad: UInt) -> Bool {
    swm_lock(lock)
    defer { swm_unlock(lock) }
    var released = false
    if let top = PageMap.lookup(source.topEnd &- 1), top.pointee.kind == SpanKind.free {
      removeFree(top)
      if let kept = trimTop(top, threshold: pad, pad: pad, released: &released) { insertFree(kept) }
    }
    released = drainGuarded() || released
    released = decommit(keeping: 0, olderThan: nil) || released
    return released
  }

  /// After a span went back: decommit beyond the dirty cap, and every
  /// quarter of the decay time, whatever has been free for the whole of it.
  func decay() {
    let dirty = state.pointee.dirtyBytes
    let cap = dirtyCap()
    if dirty > cap {
      if decommitOldest(keeping: cap &- cap / 8) { state.pointee.decays &+= 1 }
    } else if hasResidentFree {
      decayOld(now: source.now())
    }
  }

  /// After a page run was allocated, with dirtyWithinPeak (lock held):
  /// notes the peak in use, and decommits the dirty pages beyond the cap, which the
  /// allocation may have lowered (it took clean pages while dirty ones,
  /// too small for it, stayed resident).
  func keepWithinPeak(unguarded: UInt) {
    notePeak(unguarded: unguarded)
    let cap = dirtyCap()
    if state.pointee.dirtyBytes > cap {
      if decommitOldest(keeping: cap &- cap / 4) { state.pointee.decays &+= 1 }
    }
  }

  /// After a span was allocated, with dirtyWithinPeak (lock held): the
  /// peak in use only. A small span is a few pages, and decommitting for
  /// each (a program near its peak) cost the `frag` workload 10% of its
  /// time; the next release or page run applies the cap.
  /// `unguarded`: bytes of guard pages in use but not yet made (and so not
  /// yet in guardBytes).
  func notePeak(unguarded: UInt) {
    let resident = state.pointee.residentInUseBytes
    let inUse = resident > unguarded ? resident &- unguarded : 0
    if inUse > state.pointee.inUsePeak { state.pointee.inUsePeak = inUse }
  }

  /// notePeak for a central list's span, whose bytes less its guard page
  /// (`guardPage`: it has one, or is about to get one when not
  /// `span.guarded`) count towards the small spans' peak too (spanSlack).
  func notePeak(span: SpanPtr, guardPage: Bool) {
    notePeak(unguarded: guardPage && !span.pointee.guarded ? OSMemory.pageSize : 0)
    let bytes = state.pointee.spanBytes &+ span.pointee.bytes &- (guardPage ? OSMemory.pageSize : 0)
    state.pointee.spanBytes = bytes
    if bytes > state.pointee.spanPeak { state.pointee.spanPeak = bytes }
  }

  /// A central list's span going back (release, with dirtyWithinPeak, as
  /// notePeak(span:) counts it): no longer in spanBytes (never below zero,
  /// should the setting come after spans were made or a guard page not be
  /// made).
  @inline(__always)
  func forgetSpan(_ span: SpanPtr) {
    let bytes = state.pointee.spanBytes
    let body = span.pointee.bytes &- (span.pointee.guarded ? OSMemory.pageSize : 0)
    state.pointee.spanBytes = bytes > body ? bytes &- body : 0
  }

  /// How many dirty free bytes may stay resident at once: the dirty limit
  /// (bytes), or, unless the limit was set (`dirtyLimitFixed`), the bytes
  /// the heap has in use if that is more. A program that churns
  /// blocks through its heap reuses its free pages at once, and the larger
  /// its live data, the more free pages its churn spreads over: the `large`
  /// workload (64 KiB to 4 MiB blocks) ran 15x slower with a 32 MiB limit,
  /// and mimalloc-bench's malloc-large (20 live buffers of 5 to 25 MB, about
  /// 300 MB) took 10x glibc's page faults with 64 MiB, decommitting the
  /// very pages it asked for next (5.3M faults; 1.7M with half the bytes in
  /// use; 0.67M with all of them, glibc 0.51M). After a free of everything
  /// little is in use, so the limit holds; what stays dirty goes back after
  /// the decay time.
  ///
  /// With `dirtyWithinPeak` (secure mode) the cap is also kept to the
  /// headroom below the peak: in use plus dirty stays within the most ever
  /// in use plus `spanSlack`, an eighth of the most the central lists'
  /// spans have held (at least `peakSlack`, 1 MiB), so free pages kept for
  /// reuse raise the process's peak by that much at most. Without any slack
  /// a program that stays at its peak, as bench's random reallocs do,
  /// decommitted and faulted in again a page run at nearly every
  /// allocation (1250 madvise calls against 78). With 1 MiB, a program
  /// whose size classes take turns near its peak (bench's `frag`, bands of
  /// sizes) decommitted, faulted in and guarded again the pages of each
  /// band: 2,123 madvise(MADV_DONTNEED) calls and 4,094 spans the kept pool
  /// refused, 1.03-1.06x hardened_malloc's time; with an eighth of its
  /// small spans' peak, 1,230 and 23, 0.99-1.00x, peak RSS 50.5 -> 51.1
  /// MB (0.79x hardened's). The peak leaves out guard pages
  /// (residentInUseBytes). An eighth of the whole peak instead gave the `large`
  /// workload (page runs and mmap blocks, few small spans) 1.11x
  /// hardened_malloc's peak RSS against 0.99x, whose large blocks are fresh
  /// mappings each time; its page runs gain little from free pages kept
  /// (140 us per operation against hardened_malloc's 490). A churn well
  /// below its peak keeps its free pages.
  func dirtyCap() -> UInt {
    let limit = state.pointee.dirtyLimit
    if state.pointee.dirtyLimitFixed { return limit }
    let inUse = state.pointee.inUseBytes
    let cap = max(limit, inUse)
    if !state.pointee.dirtyWithinPeak { return cap }
    let resident = state.pointee.residentInUseBytes
    let ceiling = state.pointee.inUsePeak &+ spanSlack
    return min(cap, ceiling > resident ? ceiling &- resident : 0)
  }

  /// How far in use plus dirty may pass the peak in use (dirtyCap): an
  /// eighth of the central lists' spans' peak, at least `peakSlack`.
  @inline(__always)
  var spanSlack: UInt { max(PageHeapState.peakSlack, state.pointee.spanPeak &>> 3) }

  /// Whether anything free may be resident: dirty free pages, or secure
  /// mode's kept guarded spans, which decayOld gives back first (they are
  /// not free spans: checking the dirty bytes alone, a secure-mode program
  /// whose freed spans were all kept never decayed them, 51 MB of 55 after
  /// 15 s of light malloc/free, a hostile test).
  @inline(__always)
  var hasResidentFree: Bool { state.pointee.freeBytes != state.pointee.cleanBytes || state.pointee.guardedBytes != 0 }

  /// Decommits what has been free for the whole decay time, at most every
  /// quarter of it (lock held).
  private func decayOld(now: UInt) {
    let decay = state.pointee.decayMilliseconds
    if now &- state.pointee.lastDecay < decay / 4 { return }
    state.pointee.lastDecay = now
    drainGuarded()
    if decommit(keeping: 0, olderThan: UInt32(truncatingIfNeeded: now &- decay)) { state.pointee.decays &+= 1 }
  }

  /// One round of the background purge thread (shim.c, through
  /// swmcore_background_purge): what has been free for the decay time goes
  /// back. Returns the milliseconds until the next round.
  func backgroundRound() -> UInt {
    swm_lock(lock)
    decayOld(now: source.now())
    swm_unlock(lock)
    return max(10, state.pointee.decayMilliseconds / 4)
  }

  /// Decay for a program whose traffic the thread caches serve and that so
  /// never frees a span: the thread caches' slow paths call this now and
  /// then (through Heap.tick). It never waits for the page-heap lock.
  @inline(never)
  func tick() {
    let now = source.now()
    if now &- state.pointee.lastDecay < state.pointee.decayMilliseconds / 4 || !hasResidentFree { return }
    if swm_trylock(lock) == 0 { return }
    decayOld(now: now)
    swm_unlock(lock)
  }

  /// If `span` (not on a list) is the top span (ending at source.topEnd) and holds more than
  /// `threshold` bytes, shrinks the heap to keep `pad` of it. Returns what is
  /// left of the span, nil when nothing is.
  func trimTop(_ span: SpanPtr, threshold: UInt, pad: UInt, released: inout Bool) -> SpanPtr? {
    guard span.pointee.fromSbrk, span.pointee.end == source.topEnd,
          span.pointee.bytes > threshold else { return span }
    let keepPages = min((pad &+ OSMemory.pageMask) &>> OSMemory.pageShift, span.pointee.pages)
    let releasePages = span.pointee.pages &- keepPages
    if releasePages == 0 { return span }
    let releaseStart = span.pointee.start &+ (keepPages &<< OSMemory.pageShift)
    guard source.shrinkTop(to: releaseStart) else { return span }
    state.pointee.heapBytes &-= releasePages &<< OSMemory.pageShift
    _ = PageMap.set(releaseStart, pages: releasePages, to: nil)
    released = true
    span.pointee.pages = keepPages
    span.pointee.setDirty(from: span.pointee.dirtyFrom, to: min(span.pointee.dirtyTo, keepPages))
    if keepPages == 0 {
      Meta.freeSpan(span)
      return nil
    }
    PageMap.setEdges(span)
    return span
  }

  /// Beyond the dirty cap: decommits down to `keeping`, the spans free the
  /// longest first (in passes by age: half the decay time, an eighth, a
  /// thirty-second, then any), since the ones freed last are the likeliest
  /// to be asked for next. The callers leave slack below the cap (an eighth
  /// after a release, a quarter after a page run within the peak) so that
  /// each pass is worth its system calls.
  private func decommitOldest(keeping: UInt) -> Bool {
    let now = source.now()
    let decay = state.pointee.decayMilliseconds
    var any = false
    var shift: UInt = 1
    while state.pointee.dirtyBytes > keeping {
      let age = shift > 5 ? 0 : decay &>> shift  // decay/2, /8, /32, then any
      any = decommit(keeping: keeping, olderThan: UInt32(truncatingIfNeeded: now &- age)) || any
      if age == 0 { break }
      shift &+= 2
    }
    return any
  }

  /// Decommits the dirty extents of free spans (largest lists first) until
  /// at most `keeping` dirty free bytes remain, the last one in part if
  /// that is enough; with `olderThan`, only spans dirty since before that
  /// time. True when anything was decommitted.
  func decommit(keeping: UInt, olderThan: UInt32?) -> Bool {
    let l = lists
    var any = false
    var n = 0
    var order = 0  // 0 first, then exactLists down to 1
    while order <= exactLists {
      n = order == 0 ? 0 : exactLists &- order &+ 1
      var cursor = l[n].head
      while let s = cursor, state.pointee.dirtyBytes > keeping {
        if !s.pointee.clean && (olderThan == nil || Int32(bitPattern: olderThan! &- s.pointee.freedAt) >= 0) {
          decommitExtent(s, beyond: keeping)
          any = true
        }
        cursor = s.pointee.next
      }
      order &+= 1
    }
    return any
  }

  /// Decommits the dirty extent of the free span `s`, or only its lower part
  /// when the rest keeps the heap's dirty bytes at `keeping` (a pass over
  /// the cap sheds what is over, not a whole long span).
  private func decommitExtent(_ s: SpanPtr, beyond keeping: UInt) {
    let dirty = state.pointee.dirtyBytes
    let over = (dirty &- keeping &+ OSMemory.pageMask) &>> OSMemory.pageShift
    let from = s.pointee.dirtyFrom
    let pages = min(over, s.pointee.dirtyPages)
    source.decommit(s.pointee.start &+ (from &<< OSMemory.pageShift), bytes: pages &<< OSMemory.pageShift)
    state.pointee.madviseCalls &+= 1
    state.pointee.cleanBytes &+= pages &<< OSMemory.pageShift
    s.pointee.setDirty(from: from &+ pages, to: s.pointee.dirtyTo)
  }
}
