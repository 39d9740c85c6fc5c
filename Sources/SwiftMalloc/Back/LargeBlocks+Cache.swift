import CShim

// See Malloc.swift for an overview.

/// Freed mmap blocks kept for reuse: a program that frees a large block and
/// soon asks for one of about the same size (a vector that doubles again, a
/// buffer per request) gets the mapping back, its pages still resident,
/// instead of an munmap now and a page fault per page later. Blocks up to
/// `maxBlock`, at most `slots` of them and `maxBytes` in all; a block kept
/// longer than the decay time (SWIFTMALLOC_DECAY_MS) is unmapped by the next
/// large-block call or thread-cache tick, and malloc_trim unmaps them all.
/// Secure mode keeps none (its blocks get fresh guards each time). Nor is a
/// block kept that no request can reach: one smaller than the mmap
/// threshold, since requests of its size now come from the heap. glibc's
/// dynamic threshold makes that the common case: the free of an mmap block
/// of up to 32 MiB raises the threshold past it (Options.mmapBlockFreed),
/// and a cache that kept such blocks held up to maxBytes the program could
/// never get back until the decay time (mimalloc-bench's malloc-large,
/// buffers of 5-25 MiB: 633 MiB peak RSS, 128 MiB of it kept blocks; now
/// 514 MiB, glibc 522). mallopt drops what it leaves unreachable at once.
/// Invariants (large-cache lock; after it only meta and page map): `spans`
/// holds `count` entries first, oldest first; `bytes` is the sum of their
/// spans' bytes; a kept span's first page names the tombstone in the page
/// map, so a free of it reads as a double free.
extension LargeBlocks {
  static let cacheSlots = 8
  static let maxBlock: UInt = 64 << 20
  static let maxBytes: UInt = 128 << 20

  struct Cache {
    var count: Int
    var bytes: UInt
    var spans: InlineArray<8, SpanPtr?>
    var keptAt: InlineArray<8, UInt>
  }

  @inline(__always) static var cacheLock: UnsafeMutablePointer<swm_lock_t> {
    swm_lock_at(swm_lock_index_large_cache())
  }

  /// Keeps a freed block; false when it must be unmapped.
  static func keep(_ span: SpanPtr) -> Bool {
    let bytes = span.pointee.bytes
    if Heap.state.pointee.mitigations.guardPages || bytes > maxBlock || !reachable(span) { return false }
    let now = UInt(swm_now_ms())
    swm_lock(cacheLock)
    expire(now: now, all: false)
    let c = withUnsafeMutablePointer(to: &state.pointee.cache) { $0 }
    while c.pointee.count > 0 && (c.pointee.count == cacheSlots || c.pointee.bytes &+ bytes > maxBytes) {
      unmap(take(0))  // the oldest makes room
    }
    c.pointee.spans[c.pointee.count] = span
    c.pointee.keptAt[c.pointee.count] = now
    c.pointee.count &+= 1
    c.pointee.bytes &+= bytes
    _ = PageMap.set(span.pointee.start, pages: 1, to: tombstone)
    swm_unlock(cacheLock)
    _ = swm_atomic_add(&state.pointee.bytes, 0 &- bytes)
    _ = swm_atomic_add(&state.pointee.count, 0 &- 1)
    return true
  }

  /// A kept block for `size` bytes: the newest whose page count matches,
  /// or is at most a quarter larger (cut down with mremap); nil when none.
  /// Its old contents are cleared when `zeroed`.
  static func reuse(_ size: UInt, alignment: UInt, zeroed: Bool) -> RawPtr? {
    if alignment > OSMemory.pageSize || size >= maxBlock { return nil }
    let pages = max(1, (size &+ OSMemory.pageMask) &>> OSMemory.pageShift)
    swm_lock(cacheLock)
    let c = withUnsafeMutablePointer(to: &state.pointee.cache) { $0 }
    var found: SpanPtr? = nil
    var i = c.pointee.count
    while i > 0 && found == nil {
      i &-= 1
      let user = c.pointee.spans[i]!.pointee.userPages
      if user >= pages && user &- pages <= pages / 4 { found = take(i) }
    }
    swm_unlock(cacheLock)
    guard let span = found else { return nil }
    // live again: counted before resize adjusts the count by what it cuts
    var bytes = span.pointee.bytes
    swm_atomic_max(&state.pointee.bytesPeak, swm_atomic_add(&state.pointee.bytes, bytes) &+ bytes)
    swm_atomic_max(&state.pointee.countPeak, swm_atomic_add(&state.pointee.count, 1) &+ 1)
    var start = span.pointee.start
    if span.pointee.userPages != pages {
      guard let moved = resize(span, to: pages &<< OSMemory.pageShift) else { return drop(span) }
      start = UInt(bitPattern: moved)
      bytes = span.pointee.bytes
    }
    if !PageMap.set(start, pages: 1, to: span) { return drop(span) }
    if zeroed { RawPtr(bitPattern: start)!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(pages &<< OSMemory.pageShift)) }
    return RawPtr(bitPattern: start)
  }

  /// A taken block that could not be handed out after all: uncounted, unmapped.
  private static func drop(_ span: SpanPtr) -> RawPtr? {
    _ = swm_atomic_add(&state.pointee.bytes, 0 &- span.pointee.bytes)
    _ = swm_atomic_add(&state.pointee.count, 0 &- 1)
    unmap(span)
    return nil
  }

  /// Unmaps the blocks kept longer than the decay time, or all of them.
  static func trimCache(all: Bool) {
    if state.pointee.cache.count == 0 { return }
    let now = UInt(swm_now_ms())
    swm_lock(cacheLock)
    expire(now: now, all: all)
    swm_unlock(cacheLock)
  }

  /// Bytes kept (mapped, resident, free), for the statistics.
  static var cachedBytes: UInt { state.pointee.cache.bytes }

  /// Unmaps the blocks kept longer than the decay time, those no request
  /// can reach any more (the threshold rose past them, or mmap blocks are
  /// off), or all of them. (cache lock held)
  private static func expire(now: UInt, all: Bool) {
    let decay = Heap.pageHeap.state.pointee.decayMilliseconds
    while state.pointee.cache.count > 0 && (all || now &- state.pointee.cache.keptAt[0] >= decay) {
      unmap(take(0))
    }
    var i = state.pointee.cache.count
    while i > 0 {
      i &-= 1
      if !reachable(state.pointee.cache.spans[i]!) { unmap(take(i)) }
    }
  }

  /// Whether a request can still be served by this block: it takes the
  /// mmap route, so it is at least the threshold, and reuse serves only
  /// requests up to the block's size. (Read without the options lock: a
  /// block that races a mallopt is kept or dropped either way.)
  private static func reachable(_ span: SpanPtr) -> Bool {
    let route = Heap.state.pointee.route
    return route.mmapEnabled && span.pointee.userPages &<< OSMemory.pageShift >= route.mmapThreshold
  }

  /// Removes entry `i` (cache lock held), keeping the order.
  private static func take(_ i: Int) -> SpanPtr {
    let c = withUnsafeMutablePointer(to: &state.pointee.cache) { $0 }
    let span = c.pointee.spans[i]!
    var k = i
    while k &+ 1 < c.pointee.count {
      c.pointee.spans[k] = c.pointee.spans[k &+ 1]
      c.pointee.keptAt[k] = c.pointee.keptAt[k &+ 1]
      k &+= 1
    }
    c.pointee.count &-= 1
    c.pointee.spans[c.pointee.count] = nil
    c.pointee.bytes &-= span.pointee.bytes
    return span
  }

  /// Gives a kept block back to the OS (its page-map slot already names the tombstone).
  private static func unmap(_ span: SpanPtr) {
    let start = span.pointee.start
    let bytes = span.pointee.bytes
    Meta.freeSpan(span)
    _ = swm_atomic_add(&state.pointee.munmapCalls, 1)
    _ = swm_sys_munmap(RawPtr(bitPattern: start), Int(bytes))
  }
}
