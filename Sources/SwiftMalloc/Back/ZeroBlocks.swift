import CShim

// See Malloc.swift for an overview.

/// Zero-size blocks (malloc(0), calloc(0, n), the aligned forms with size
/// 0): pointers into a reserved region that is never readable nor writable
/// (PROT_NONE), so any access to one faults at once, as with
/// hardened_malloc. Each request gets the next 16 bytes (or the next
/// address aligned as asked), so live zero-size blocks are distinct until
/// the region has been handed out once in full (`regionBytes` / 16 =
/// 4,194,304 requests); then it starts again from its first address.
/// free, realloc, malloc_usable_size (0) and free_sized(p, 0) accept them;
/// freeing one gives nothing back, and a double free of one is not seen.
/// The region is reserved on the first zero-size request; when it cannot be
/// (an address-space limit), malloc(0) returns an ordinary 16-byte block.
enum ZeroBlocks {
  static let regionBytes: UInt = 64 << 20

  /// `next` is atomic; `base` is written once (under the init lock).
  struct State {
    var base: UInt
    var next: UInt
    /// The Span that Ownership hands out for a zero-size block (kind zero).
    var span: Span
  }

  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.zero) { $0 }
  }

  @inline(__always)
  static func contains(_ address: UInt) -> Bool {
    let base = state.pointee.base
    return base != 0 && address &- base < regionBytes
  }

  static var span: SpanPtr {
    let span = withUnsafeMutablePointer(to: &state.pointee.span) { $0 }
    span.pointee.kind = SpanKind.zero
    return span
  }

  /// A zero-size block aligned to `alignment` (a power of two); nil when the
  /// region cannot be reserved or the alignment exceeds it.
  static func allocate(alignment: UInt) -> RawPtr? {
    if state.pointee.base == 0 && !reserve() { return nil }
    if alignment > regionBytes / 2 { return nil }
    let base = state.pointee.base
    while true {
      let current = swm_atomic_load_relaxed(&state.pointee.next)
      var offset = (current &+ alignment &- 1) & ~(alignment &- 1)
      if offset &+ 16 > regionBytes { offset = 0 }  // the region was handed out in full: start again
      if swm_atomic_cas_weak(&state.pointee.next, current, offset &+ 16) != 0 {
        return RawPtr(bitPattern: base &+ offset)
      }
    }
  }

  @inline(never)
  private static func reserve() -> Bool {
    let lock = swm_lock_at(UInt32(SWM_LOCK_INIT))
    swm_lock(lock)
    defer { swm_unlock(lock) }
    if state.pointee.base != 0 { return true }
    guard let region = swm_sys_reserve(Int(regionBytes)) else { return false }
    swm_atomic_store_relaxed(&state.pointee.base, UInt(bitPattern: region))
    return true
  }
}
