import CShim

// See Malloc.swift for an overview.

/// The cache region: address space reserved (PROT_NONE, nothing committed)
/// on the first thread cache, made read-write a step at a time, where thread
/// caches live in slots of Meta.cacheBytes. It lies within one 4 GiB-aligned
/// window, so a cache's id (the low 32 bits of its address, what spans and
/// the page map record as a span's owner) gives back its address: the
/// window's base plus the id. Slots are never unmapped and hold nothing but
/// caches (live, or freed with a closed inbox), so another thread may push
/// on the inbox of the cache an id names at any time (Remote.flush).
///
/// When the region cannot be reserved (an address-space limit) or is full,
/// caches come from the metadata chunks; their ids name no region slot, and
/// blocks freed from their spans by other threads go to the central lists.
extension Meta {
  /// 64 MiB: 16,384 caches of 4 KiB, 32,768 of 2 KiB.
  static let cacheRegionBytes: UInt = 64 << 20
  /// Made read-write this much at a time.
  static let cacheCommitStep: UInt = 256 << 10
  static let windowMask: UInt = 0xffff_ffff

  /// The cache `id` names, when it is a slot of the cache region that has
  /// been handed out; nil otherwise (any thread, no lock).
  @inline(__always)
  static func cache(forID id: UInt32) -> RawPtr? {
    let base = swm_atomic_load_relaxed(&state.pointee.cacheBase)
    let address = (base & ~windowMask) | UInt(id)
    if base == 0 || address < base || address >= swm_atomic_load_relaxed(&state.pointee.cacheBump) { return nil }
    if (address &- base) & (cacheBytes &- 1) != 0 { return nil }
    return RawPtr(bitPattern: address)
  }

  /// The next slot of the region, zeroed (fresh pages), or nil when there
  /// is no region or it is full (meta lock held).
  static func takeRegionSlot() -> RawPtr? {
    if !state.pointee.cacheRegionTried { reserveCacheRegion() }
    let slot = state.pointee.cacheBump
    if slot == 0 || slot &+ cacheBytes > state.pointee.cacheEnd { return nil }
    if slot &+ cacheBytes > state.pointee.cacheCommitted {
      let start = state.pointee.cacheCommitted
      let length = min(cacheCommitStep, state.pointee.cacheEnd &- start)
      if swm_sys_mprotect(RawPtr(bitPattern: start), Int(length), PROT_READ | PROT_WRITE) != 0 { return nil }
      state.pointee.cacheCommitted = start &+ length
      accountMapped(length)
    }
    state.pointee.bumpedBytes &+= cacheBytes
    swm_atomic_store_relaxed(&state.pointee.cacheBump, slot &+ cacheBytes)
    return RawPtr(bitPattern: slot)
  }

  /// Reserves the region and keeps the larger part of it that lies in one
  /// 4 GiB window; id 0 means "no owner", so a slot at a window's start is
  /// skipped.
  private static func reserveCacheRegion() {
    state.pointee.cacheRegionTried = true
    guard let region = swm_sys_reserve(Int(cacheRegionBytes)) else { return }
    var start = UInt(bitPattern: region)
    var end = start &+ cacheRegionBytes
    let boundary = (end &- 1) & ~windowMask
    if boundary > start {
      if boundary &- start >= end &- boundary { end = boundary } else { start = boundary }
    }
    if start & windowMask == 0 { start &+= cacheBytes }
    state.pointee.cacheCommitted = start
    state.pointee.cacheEnd = end
    state.pointee.cacheBump = start
    swm_atomic_store_relaxed(&state.pointee.cacheBase, start)
  }
}
