import CShim

// See Malloc.swift for an overview.

/// One bin of a thread cache: a singly linked list of free blocks of one
/// size class (linked through word 0 of each block).
///
/// Invariants: `count` is the length of the list; `count <= limit` except
/// for the moment inside freeSlow, and after a refill from the inbox
/// (Remote.receive takes the whole list, up to the inbox's limit and a
/// batch more), until malloc drains it or the next free restores it;
/// `limit` starts at 0 and grows by a batch
/// (up to ThreadCache.limitCap, and within the thread's share of the cache
/// budget, see Budget) each time the bin runs dry and is refilled; the
/// sentinels have limit 0 everywhere.
/// 16 bytes: free's fast path finds a bin at SmallFacts.classTimes16
/// bytes into the cache (SizeClassTests checks the size).
struct Bin {
  var head: RawPtr?
  var count: UInt32
  var limit: UInt32
}

/// A thread cache is an array of SWM_NUM_CLASSES bins (the TLS slot points at
/// bin 0, so the fast paths index it directly), then as many outgoing lists
/// (Outgoing), a small header and, on a cache line of its own, the inbox
/// (Inbox, ThreadCache+Remote.swift). A bin holds blocks of spans this
/// thread owns (Span.owner), for reuse here; an outgoing list holds blocks
/// this thread freed from another thread's spans, sent to that thread's
/// inbox a batch at a time and never reused here; the inbox receives what
/// other threads freed from this thread's spans, for its bins.
/// Until the thread's first slow path its slot holds the fresh sentinel
/// (swm_fresh_cache: empty bins, limit 0, so both fast paths miss); the slow
/// path creates the cache. The pthread key destructor gives the cache back
/// when the thread exits; from then on the slot holds the dead cache, whose
/// empty, zero-limit bins also send every call to the slow path, which then
/// works on the central lists directly. Neither sentinel has outgoing lists
/// or a header: only `existing()` and `current()` caches do.
enum ThreadCache {
  /// Written by the owner thread on its slow paths, but `flushRequested`
  /// (any thread, atomically) and the links (meta lock).
  struct Header {
    var registered: UInt
    /// Sum of limit x block size over the bins: the most this cache can
    /// hold (outgoing lists aside), kept within Budget's share.
    var capacity: UInt
    /// Bins whose limit is not 0.
    var activeBins: UInt
    /// Set by another thread when the caches together hold more than the
    /// budget: the owner trims its cache on its next slow path.
    var flushRequested: UInt
    /// Every live cache, for Budget.requestFlushes (meta lock).
    var next: RawPtr?
    var prev: RawPtr?
    /// Slow paths taken, for Heap.tick.
    var slowPaths: UInt
    /// `slowPaths`, and the inbox's pending classes it left, when
    /// Remote.reclaimIdle last looked (meta lock).
    var slowPathsAtReclaim: UInt
    var pendingAtReclaim: UInt
    /// Bytes in the outgoing lists, at most Remote.outgoingLimit and a
    /// block between two frees (owner only).
    var outgoingHeld: UInt
  }
  static let binsBytes = MemoryLayout<Bin>.stride * Int(SWM_NUM_CLASSES)
  static let outgoingBytes = MemoryLayout<Outgoing>.stride * Int(SWM_NUM_CLASSES)
  static let headerOffset = binsBytes + outgoingBytes
  /// The inbox starts a cache line of its own: other threads write it.
  static let inboxOffset = (headerOffset + MemoryLayout<Header>.stride + 63) & ~63
  static let bytes = inboxOffset + MemoryLayout<Inbox>.stride

  @inline(__always)
  static var dead: RawPtr { UnsafeMutableRawPointer(withUnsafeMutablePointer(to: &Heap.state.pointee.deadCache) { $0 }) }
  @inline(__always) static var fresh: RawPtr { swm_fresh_cache_get() }

  /// Whether `cache` (the thread's TLS value) is a real cache, registered
  /// for its thread's exit: what current() would return without work.
  @inline(__always)
  static func registered(_ cache: RawPtr) -> Bool {
    isReal(cache) && header(cache).pointee.registered != 0
  }

  /// Whether a TLS value is a cache, not the fresh or dead sentinel.
  @inline(__always)
  static func isReal(_ cache: RawPtr) -> Bool { cache != fresh && cache != dead }

  /// The calling thread's cache if it has a real one (not a sentinel).
  @inline(__always)
  static func existing() -> RawPtr? {
    let cache = swm_tls_get()
    return isReal(cache) ? cache : nil
  }

  @inline(__always)
  static func header(_ cache: RawPtr) -> UnsafeMutablePointer<Header> {
    (cache + headerOffset).assumingMemoryBound(to: Header.self)
  }

  @inline(__always)
  static func outgoing(_ cache: RawPtr, _ sizeClass: UInt32) -> UnsafeMutablePointer<Outgoing> {
    (cache + binsBytes).assumingMemoryBound(to: Outgoing.self) + Int(sizeClass)
  }

  /// The owner tag spans carry for this cache (Span.owner): the low 32 bits
  /// of its address, compared as they are in free(). Two caches 4 GiB apart
  /// would share a tag, and a cache at a 4 GiB boundary would have tag 0
  /// ("no owner"): then a block may stay in the wrong cache or go back to
  /// the central list, which is allowed, only less tidy.
  @inline(__always)
  static func id(_ cache: RawPtr) -> UInt32 {
    UInt32(truncatingIfNeeded: UInt(bitPattern: cache))
  }

  /// The calling thread's cache, created if it has none; nil once the thread
  /// has been torn down (or when no memory is left for a cache).
  @inline(__always)
  static func current() -> RawPtr? {
    let cache = swm_tls_get()
    if cache == fresh { return create() }
    if cache == dead { return nil }
    if header(cache).pointee.registered == 0 { register(cache) }
    return cache
  }

  @inline(never)
  private static func create() -> RawPtr? {
    guard let cache = Meta.allocCache() else { return nil }
    swm_tls_set(cache)  // every limit 0: the first use of each class refills it
    register(cache)
    return cache
  }

  @inline(never)
  private static func register(_ cache: RawPtr) {
    if swm_thread_register(cache) != 0 { header(cache).pointee.registered = 1 }
  }

  /// malloc's slow path for a small class: refill the bin with a batch.
  @inline(never)
  static func allocateSlow(sizeClass: UInt32) -> RawPtr? {
    guard let cache = current() else {
      // no cache (thread torn down): one block straight from the central list
      let (head, taken) = Central.fetch(sizeClass, count: 1, owner: 0)
      if taken == 0 { swm_errno_set(swm_ENOMEM()); return nil }
      head!.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
      return head
    }
    let bin = cache.assumingMemoryBound(to: Bin.self) + Int(sizeClass)
    if bin.pointee.head == nil {
      let batch = UInt32(swm_class_batch_size(sizeClass))
      // A bin that runs dry is serving a working set larger than it may
      // hold: let it hold one batch more, up to its cap and within the
      // budget. (Growing on overflow instead would let a thread that only
      // frees, a consumer, pile up 128 KiB per class that it never reuses.)
      let cap = limitCap(sizeClass)
      if bin.pointee.limit < cap { Budget.grow(cache, sizeClass, to: min(cap, bin.pointee.limit &+ batch)) }
      // blocks other threads freed from this thread's spans come first,
      // else a batch, or what the limit allows (the popped block does not
      // count), from the central list
      if !Remote.receive(cache, sizeClass, into: bin) {
        let want = min(batch, bin.pointee.limit &+ 1)
        let (head, taken) = Central.fetch(sizeClass, count: want, owner: id(cache))
        if taken == 0 { swm_errno_set(swm_ENOMEM()); return nil }
        bin.pointee.head = head
        bin.pointee.count = taken
      }
      let block = pop(bin)
      afterSlowPath(cache, sizeClass)  // may shrink this very bin: pop first
      return block
    }
    return pop(bin)
  }

  @inline(__always)
  private static func pop(_ bin: UnsafeMutablePointer<Bin>) -> RawPtr {
    let block = bin.pointee.head.unsafelyUnwrapped  // the caller saw it non-empty
    bin.pointee.head = block.load(as: RawPtr?.self)
    bin.pointee.count &-= 1
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
    return block
  }

  /// free's slow path for a small block (tag already written) of a span
  /// owned by `owner`: push on the bin (our span) or the outgoing list
  /// (another thread's), then give a batch back if it is over its limit.
  @inline(never)
  static func freeSlow(_ block: RawPtr, sizeClass: UInt32, owner: UInt32) {
    guard let cache = current() else {
      block.storeBytes(of: nil, as: RawPtr?.self)
      Central.release(sizeClass, head: block)
      return
    }
    if owner != id(cache) { return Remote.send(block, cache: cache, sizeClass: sizeClass, owner: owner) }
    let bin = cache.assumingMemoryBound(to: Bin.self) + Int(sizeClass)
    block.storeBytes(of: bin.pointee.head, as: RawPtr?.self)
    bin.pointee.head = block
    bin.pointee.count &+= 1
    if bin.pointee.count > bin.pointee.limit {
      let excess = bin.pointee.count &- bin.pointee.limit
      releaseBatch(bin, sizeClass: sizeClass, count: max(min(UInt32(swm_class_batch_size(sizeClass)), bin.pointee.count),
                                                          excess))
      afterSlowPath(cache, sizeClass)
    }
  }

  /// What every refill and overflow is followed by: the budget check,
  /// every 16th time the page heap's decay (whose time has come even when
  /// no span is freed, in a program the caches serve), and the live page
  /// when there is one (API/Live.swift).
  @inline(__always)
  private static func afterSlowPath(_ cache: RawPtr, _ sizeClass: UInt32) {
    Budget.check(cache)
    let header = header(cache)
    header.pointee.slowPaths &+= 1
    if header.pointee.slowPaths & 15 == 0 {
      Heap.tick()
      Remote.tick()
    }
    if swm_live_on() != 0 { Live.classChanged(sizeClass) }
  }

  /// The most blocks a bin may hold: two batches, or more up to 128 KiB.
  static func limitCap(_ sizeClass: UInt32) -> UInt32 {
    let byBytes = UInt32((128 << 10) / swm_class_to_size(sizeClass))
    return max(2 &* UInt32(swm_class_batch_size(sizeClass)), min(byBytes, 4096))
  }

  /// Gives the first `count` blocks of a bin back to the central list.
  static func releaseBatch(_ bin: UnsafeMutablePointer<Bin>, sizeClass: UInt32, count: UInt32) {
    guard bin.pointee.head != nil, count > 0 else { return }
    let n = min(count, bin.pointee.count)
    bin.pointee.head = Central.release(sizeClass, head: bin.pointee.head, count: n)
    bin.pointee.count &-= n
  }

  /// Empties every bin and inbox list of `cache` into the central lists
  /// and sends every outgoing list; with `closing` (thread exit), the inbox
  /// accepts nothing more.
  static func flush(_ cache: RawPtr, closing: Bool = false) {
    let bins = cache.assumingMemoryBound(to: Bin.self)
    var c: UInt32 = 1
    while c < UInt32(SWM_NUM_CLASSES) {
      let bin = bins + Int(c)
      if bin.pointee.count > 0 { releaseBatch(bin, sizeClass: c, count: bin.pointee.count) }
      c &+= 1
    }
    Remote.flushAll(cache)
    Remote.drain(cache, closing: closing)
  }
}

/// Called by the pthread key destructor when a thread exits (shim.c).
@c(swmcore_thread_exit)
func swmcore_thread_exit(_ cache: RawPtr) {
  if cache == ThreadCache.dead { return }
  ThreadCache.flush(cache, closing: true)
  Budget.retire(cache)
  swm_tls_set(ThreadCache.dead)
  Meta.freeCache(cache)
}
