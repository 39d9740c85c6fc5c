import CShim

// See Malloc.swift for an overview.

/// The process-wide budget of the thread caches: all of them together may
/// hold about `budget` bytes of free blocks (default 4 MiB,
/// SWIFTMALLOC_CACHE_BUDGET), so a process with thousands of threads does
/// not keep a megabyte of blocks behind each one.
///
/// A cache's `capacity` is the sum over its bins of limit x block size: the
/// most it can hold, since the free fast path sends a block that would pass
/// a bin's limit to the slow path. Capacity changes only on slow paths, so
/// it is counted exactly without a byte count on the fast paths:
/// - A thread's `share` is budget / live caches, at least `minShare`
///   (recomputed when a cache is made or freed): it shrinks as threads
///   multiply.
/// - A bin grows (a refill) only within the share; to grow one bin the
///   owner first takes capacity from its other bins, the largest first (the
///   class in hand is the one in use), giving their excess blocks back to
///   the central lists.
/// - Each refill and overflow checks, in O(1), whether the capacity is over
///   the share (the share shrank) or another thread asked for a flush, and
///   then shrinks to half the share.
/// - The capacities add up in `capacity`; a thread that finds the sum over
///   twice the budget asks the caches over their share to shrink
///   (`flushRequested`, an atomic word), which each owner does on its next
///   slow path. No thread touches another's bins: the fast paths have no
///   lock and no atomic, so only the owner may.
/// - Thread exit and malloc_trim flush the bins.
/// A thread that blocks for good keeps what it held at its last slow path:
/// at most its share then.
enum Budget {
  /// `capacity` is atomic; `share`, `live` and the links in each cache's
  /// Header are under the meta lock; `budget` is written by Options.
  struct State {
    var budget: UInt
    var share: UInt
    var capacity: UInt
    var live: RawPtr?
    /// When Remote.reclaimIdle last ran (ms, swm_now_ms; atomic).
    var lastReclaim: UInt
  }

  static let defaultBudget: UInt = 4 << 20
  /// However many threads there are, each may keep this much.
  static let minShare: UInt = 16 << 10

  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.caches) { $0 }
  }

  /// Recomputes the share (meta lock held, or at init).
  static func updateShare() {
    state.pointee.share = max(minShare, state.pointee.budget / max(1, Meta.state.pointee.liveCaches))
  }

  /// Raises a bin's limit toward `wanted`, as far as the share allows after
  /// taking capacity from the other bins (never below one block).
  static func grow(_ cache: RawPtr, _ sizeClass: UInt32, to wanted: UInt32) {
    let header = ThreadCache.header(cache)
    let bin = cache.assumingMemoryBound(to: Bin.self) + Int(sizeClass)
    let size = UInt(swm_class_to_size(sizeClass))
    let share = state.pointee.share
    let after = header.pointee.capacity &+ UInt(wanted &- bin.pointee.limit) &* size
    // Take from other bins only while this one holds less than an even
    // split of the share among the bins in use: a thread using many classes
    // at once then settles instead of moving capacity round and round.
    let fair = share / max(1, header.pointee.activeBins &+ (bin.pointee.limit == 0 ? 1 : 0))
    if after > share && UInt(bin.pointee.limit) &* size < fair { shrink(cache, by: after &- share, sparing: sizeClass) }
    let room = share > header.pointee.capacity ? share &- header.pointee.capacity : 0
    let fits = UInt(bin.pointee.limit) &+ room / size
    setLimit(cache, sizeClass, UInt32(truncatingIfNeeded: max(1, min(UInt(wanted), fits))))
  }

  /// The O(1) check after a refill or an overflow.
  @inline(__always)
  static func check(_ cache: RawPtr) {
    let header = ThreadCache.header(cache)
    if header.pointee.capacity > state.pointee.share || header.pointee.flushRequested != 0 { shrinkToShare(cache) }
  }

  @inline(never)
  private static func shrinkToShare(_ cache: RawPtr) {
    let header = ThreadCache.header(cache)
    _ = swm_atomic_exchange(&header.pointee.flushRequested, 0)
    let target = state.pointee.share / 2
    if header.pointee.capacity > target { shrink(cache, by: header.pointee.capacity &- target, sparing: 0) }
    if state.pointee.capacity > 2 &* state.pointee.budget { requestFlushes() }
  }

  /// Lowers limits by at least `bytes` of capacity (or as far as it goes):
  /// each time the bin of the largest capacity other than `sparing` loses
  /// half its limit, or all of it when that is needed; blocks past a new
  /// limit go back to the central list.
  private static func shrink(_ cache: RawPtr, by bytes: UInt, sparing: UInt32) {
    let bins = cache.assumingMemoryBound(to: Bin.self)
    var freed: UInt = 0
    while freed < bytes {
      var largest: UInt32 = 0
      var most: UInt = 0
      var c: UInt32 = 1
      while c < UInt32(SWM_NUM_CLASSES) {
        let held = UInt(bins[Int(c)].limit) &* UInt(swm_class_to_size(c))
        if c != sparing && held > most { (largest, most) = (c, held) }
        c &+= 1
      }
      if largest == 0 { return }
      let size = UInt(swm_class_to_size(largest))
      let limit = bins[Int(largest)].limit
      let needed = UInt32(truncatingIfNeeded: min(UInt(limit), (bytes &- freed &+ size &- 1) / size))
      let cut = max(needed, limit / 2)
      setLimit(cache, largest, limit &- cut)
      freed &+= UInt(cut) &* size
    }
  }

  /// Sets a bin's limit, keeping the capacities and the bin's count in step.
  private static func setLimit(_ cache: RawPtr, _ sizeClass: UInt32, _ limit: UInt32) {
    let header = ThreadCache.header(cache)
    let bin = cache.assumingMemoryBound(to: Bin.self) + Int(sizeClass)
    let size = UInt(swm_class_to_size(sizeClass))
    let delta = UInt(limit) &* size &- UInt(bin.pointee.limit) &* size  // wraps when shrinking
    header.pointee.capacity &+= delta
    if (bin.pointee.limit == 0) != (limit == 0) { header.pointee.activeBins = limit == 0 ? header.pointee.activeBins &- 1 : header.pointee.activeBins &+ 1 }
    _ = swm_atomic_add(&state.pointee.capacity, delta)
    bin.pointee.limit = limit
    Remote.setLimit(cache, sizeClass, binLimit: limit)
    if bin.pointee.count > limit {
      ThreadCache.releaseBatch(bin, sizeClass: sizeClass, count: bin.pointee.count &- limit)
    }
  }

  /// A cache leaving (thread exit): its capacity leaves the sum.
  static func retire(_ cache: RawPtr) {
    let header = ThreadCache.header(cache)
    _ = swm_atomic_add(&state.pointee.capacity, 0 &- header.pointee.capacity)
    header.pointee.capacity = 0
    header.pointee.activeBins = 0
  }

  /// The caches together may hold more than twice the budget: ask those
  /// over their share to shrink on their next slow path.
  @inline(never)
  private static func requestFlushes() {
    swm_lock(Meta.lock)
    let share = state.pointee.share
    var cursor = state.pointee.live
    while let cache = cursor {
      let header = ThreadCache.header(cache)
      if header.pointee.capacity > share { swm_atomic_store_relaxed(&header.pointee.flushRequested, 1) }
      cursor = header.pointee.next
    }
    swm_unlock(Meta.lock)
  }

  /// A new cache joins the live list (meta lock held).
  static func link(_ cache: RawPtr) {
    let header = ThreadCache.header(cache)
    header.pointee.next = state.pointee.live
    header.pointee.prev = nil
    if let first = state.pointee.live { ThreadCache.header(first).pointee.prev = cache }
    state.pointee.live = cache
    updateShare()
  }

  /// A cache leaves the live list (meta lock held).
  static func unlink(_ cache: RawPtr) {
    let header = ThreadCache.header(cache)
    if let prev = header.pointee.prev { ThreadCache.header(prev).pointee.next = header.pointee.next }
    else { state.pointee.live = header.pointee.next }
    if let next = header.pointee.next { ThreadCache.header(next).pointee.prev = header.pointee.prev }
  }
}
