import CShim

// See Malloc.swift for an overview.

/// Allocator metadata (Span structs, thread caches) comes from here, never
/// from malloc: bump allocation from 1 MiB mmap chunks, freed objects kept on
/// one free list per kind. Under the meta lock. Memory is never returned.
///
/// Thread caches come first from the cache region (Meta+CacheRegion.swift),
/// where a cache's 32-bit id (ThreadCache.id) is enough to find it again,
/// so that other threads can send it the blocks they free from its spans.
enum Meta {
  /// Under the meta lock, but `bytes` (atomic: the page map adds its leaves)
  /// and `cacheBump` (written under the lock, read by anyone).
  struct State {
    var bump: UInt
    var end: UInt
    var freeSpans: RawPtr?
    var freeCaches: RawPtr?
    /// Address space taken for metadata: chunks here and page-map leaves.
    var bytes: UInt
    var liveCaches: UInt
    /// Statistics: mappings made (chunks and leaves, atomic), and bytes of
    /// chunks handed out by the bump pointer (written, so resident).
    var mmapCalls: UInt
    var bumpedBytes: UInt
    /// The cache region: [cacheBase, cacheEnd) reserved in one 4 GiB-aligned
    /// window, read-write up to cacheCommitted, handed out up to cacheBump.
    var cacheBase: UInt
    var cacheCommitted: UInt
    var cacheBump: UInt
    var cacheEnd: UInt
    /// Set once the region has been tried (it may have failed).
    var cacheRegionTried: Bool
  }

  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.meta) { $0 }
  }

  /// Metadata mapped elsewhere (page-map leaves), for the statistics.
  static func accountMapped(_ bytes: UInt) {
    _ = swm_atomic_add(&state.pointee.bytes, bytes)
    _ = swm_atomic_add(&state.pointee.mmapCalls, 1)
  }

  static let chunkBytes: UInt = 1 << 20
  static let spanBytes: UInt = 64
  /// Every cache takes a power-of-two slot (a multiple of 64 bytes).
  static var cacheBytes: UInt {
    var slot: UInt = 64
    while slot < UInt(ThreadCache.bytes) { slot &<<= 1 }
    return slot
  }

  @inline(__always) static var lock: UnsafeMutablePointer<swm_lock_t> { swm_lock_at(swm_lock_index_meta()) }

  /// A zeroed Span struct, or nil when memory is exhausted.
  static func allocSpan() -> SpanPtr? {
    if MemoryLayout<Span>.stride > Int(spanBytes) { Diagnostics.fatal("init", "span struct too large", nil) }
    swm_lock(lock)
    let p = take(spanBytes, freeList: &state.pointee.freeSpans)
    swm_unlock(lock)
    return p?.bindMemory(to: Span.self, capacity: 1)
  }

  static func freeSpan(_ span: SpanPtr) {
    swm_lock(lock)
    give(RawPtr(span), freeList: &state.pointee.freeSpans)
    swm_unlock(lock)
  }

  static func allocCache() -> RawPtr? {
    swm_lock(lock)
    let p = takeCache()
    if let p {
      state.pointee.liveCaches &+= 1
      Budget.link(p)  // after the count: the share shrinks
    }
    swm_unlock(lock)
    return p
  }

  static func freeCache(_ cache: RawPtr) {
    swm_lock(lock)
    Budget.unlink(cache)
    give(cache, freeList: &state.pointee.freeCaches)
    state.pointee.liveCaches &-= 1
    Budget.updateShare()
    swm_unlock(lock)
  }

  /// A zeroed cache: a freed one, else a new slot of the cache region, else
  /// (no region, or it is full) one from the chunks (meta lock held).
  private static func takeCache() -> RawPtr? {
    if state.pointee.freeCaches == nil, let p = takeRegionSlot() { return p }
    return take(cacheBytes, freeList: &state.pointee.freeCaches)
  }

  static func take(_ bytes: UInt, freeList: inout RawPtr?) -> RawPtr? {
    if let p = freeList {
      freeList = p.load(as: RawPtr?.self)
      p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(bytes))
      return p
    }
    let state = Meta.state
    if state.pointee.bump &+ bytes > state.pointee.end {
      guard let chunk = swm_sys_mmap(Int(chunkBytes)) else { return nil }
      state.pointee.bump = UInt(bitPattern: chunk)
      state.pointee.end = state.pointee.bump &+ chunkBytes
      accountMapped(chunkBytes)
    }
    let p = RawPtr(bitPattern: state.pointee.bump)
    state.pointee.bump &+= bytes
    state.pointee.bumpedBytes &+= bytes
    return p  // fresh mmap memory is zero
  }

  private static func give(_ p: RawPtr, freeList: inout RawPtr?) {
    p.storeBytes(of: freeList, as: RawPtr?.self)
    freeList = p
  }
}
