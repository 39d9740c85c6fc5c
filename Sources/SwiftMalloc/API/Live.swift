import CShim

// See Malloc.swift for an overview.

/// The live page (SWIFTMALLOC_LIVE=1; layout in swm_live.h, the page itself
/// in Sources/CShim/live.c): what `swiftmalloc top` shows of a running
/// process. Written on slow paths only, never on the fast paths:
///   - `classChanged(c)` after every thread-cache refill or overflow of
///     class c (ThreadCache.afterSlowPath): that class's spans and free
///     blocks, read under its lock;
///   - with it, the totals from the page heap's counters (if its lock is
///     free right now) and the page's own class entries (`fillQuickTotals`),
///     so a program that stops allocating shows its last state;
///   - every class and the totals (swmcore_collect_stats) at most once per
///     tick of the coarse clock, on any of those slow paths or after a page
///     run or mmap block came or went (`tick`, Malloc.swift).
/// With the page off, each hook is one load and a branch not taken.
enum Live {
  typealias Page = UnsafeMutablePointer<swm_live_page_t>

  @inline(never)
  static func classChanged(_ sizeClass: UInt32) {
    var totals: Int32 = 0
    guard let page = swm_live_begin(&totals) else { return }
    if totals != 0 {
      fillAll(page)
    } else {
      fillClass(page, sizeClass)
      fillQuickTotals(page)
    }
    page.pointee.class_updates &+= 1
    swm_live_end(page)
  }

  @inline(never)
  static func tick() {
    var totals: Int32 = -1
    guard let page = swm_live_begin(&totals) else { return }
    fillAll(page)
    swm_live_end(page)
  }

  static func fillClass(_ page: Page, _ sizeClass: UInt32) {
    let lock = swm_lock_at(sizeClass)
    swm_lock(lock)
    let central = Central.list(sizeClass)
    let spans = central.pointee.spans
    let free = central.pointee.freeBlocks
    swm_unlock(lock)
    let entry = swm_live_class(page, sizeClass)
    entry.pointee.spans = UInt64(spans)
    entry.pointee.free = UInt64(free)
  }

  /// The totals without taking every class lock: the central lists' free
  /// bytes come from the page's class entries (each as of its class's last
  /// update), the rest as swmcore_collect_stats reads it (quarantine as of
  /// the last full update). Skipped when the page heap's lock is busy.
  static func fillQuickTotals(_ page: Page) {
    var centralFree: UInt = 0
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) && c < UInt32(SWM_LIVE_MAX_CLASSES) {
      let entry = swm_live_class(page, c)
      let size = UInt(swm_class_to_size(c))
      let tail = UInt(swm_class_span_pages(c)) &<< OSMemory.pageShift &- UInt(swm_class_span_objects(c)) &* size
      centralFree &+= UInt(entry.pointee.free) &* size &+ UInt(entry.pointee.spans) &* tail
      c &+= 1
    }
    let heap = Heap.pageHeap
    if swm_trylock(heap.lock) == 0 { return }
    let os = OSMemory.state
    let pageHeap = heap.state
    let arena = os.pointee.sbrkBytes &+ os.pointee.regionMmapBytes
    let quarantined = UInt(page.pointee.quarantine)
    let free = pageHeap.pointee.unusedBytes &+ centralFree &+ quarantined
    page.pointee.arena = UInt64(os.pointee.sbrkBytes)
    page.pointee.region_mmap = UInt64(os.pointee.regionMmapBytes)
    page.pointee.fordblks = UInt64(free)
    page.pointee.uordblks = UInt64(arena > free ? arena &- free : 0)
    page.pointee.keepcost = UInt64(heap.topFreeBytes())
    page.pointee.released = UInt64(pageHeap.pointee.cleanBytes)
    swm_unlock(heap.lock)
    let large = LargeBlocks.state
    page.pointee.hblks = UInt64(large.pointee.count)
    page.pointee.hblkhd = UInt64(large.pointee.bytes)
    page.pointee.hblks_peak = UInt64(large.pointee.countPeak)
    page.pointee.hblkhd_peak = UInt64(large.pointee.bytesPeak)
    page.pointee.meta = UInt64(Meta.state.pointee.bytes)
    page.pointee.threads = UInt64(Meta.state.pointee.liveCaches)
    page.pointee.in_use_peak = max(page.pointee.in_use_peak, page.pointee.uordblks &+ page.pointee.hblkhd)
    page.pointee.updated_ms = swm_now_ms()
  }

  static func fillAll(_ page: Page) {
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) && c < UInt32(SWM_LIVE_MAX_CLASSES) {
      fillClass(page, c)
      c &+= 1
    }
    var s = swm_stats_t()
    swmcore_collect_stats(&s)
    page.pointee.arena = UInt64(s.arena)
    page.pointee.region_mmap = UInt64(s.region_mmap)
    page.pointee.hblks = UInt64(s.hblks)
    page.pointee.hblkhd = UInt64(s.hblkhd)
    page.pointee.hblks_peak = UInt64(s.hblks_peak)
    page.pointee.hblkhd_peak = UInt64(s.hblkhd_peak)
    page.pointee.uordblks = UInt64(s.uordblks)
    page.pointee.fordblks = UInt64(s.fordblks)
    page.pointee.keepcost = UInt64(s.keepcost)
    page.pointee.released = UInt64(s.released)
    page.pointee.meta = UInt64(s.meta)
    page.pointee.threads = UInt64(s.threads)
    page.pointee.secure = Heap.state.pointee.mitigations.checkedSmallBlocks ? 1 : 0
    page.pointee.quarantine = Heap.state.pointee.mitigations.quarantine ? UInt64(Quarantine.bytes()) : 0
    page.pointee.in_use_peak = max(page.pointee.in_use_peak, UInt64(s.uordblks &+ s.hblkhd))
    page.pointee.updates &+= 1
  }
}

/// The whole page at once (live.c, when the page is made).
@c(swmcore_live_update_all)
func swmcore_live_update_all() {
  var totals: Int32 = 1
  guard let page = swm_live_begin(&totals) else { return }
  Live.fillAll(page)
  swm_live_end(page)
}
