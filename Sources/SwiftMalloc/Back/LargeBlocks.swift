import CShim

/// Requests of M_MMAP_THRESHOLD bytes and up: one private anonymous mapping
/// each, page aligned (or aligned further for memalign), munmapped on free and
/// resized with mremap. A Span struct of kind mmap describes each one, and
/// the page map knows its first page only (the block start), so an interior
/// pointer is rejected as invalid.
enum LargeBlocks {
  static let tombstoneOffset = 1792

  /// One shared Span of kind `unmapped`; the page map sends the first page of
  /// every freed mmap block here until the address is mapped again.
  @inline(__always)
  static var tombstone: SpanPtr {
    let span = Heap.region(at: tombstoneOffset, as: Span.self)
    span.pointee.kind = SpanKind.unmapped
    return span
  }

  static func allocate(_ size: UInt, alignment: UInt, zeroed: Bool?) -> RawPtr? {
    let bytes = (size &+ OSMemory.pageMask) & ~OSMemory.pageMask
    let extra = alignment > OSMemory.pageSize ? alignment : 0
    guard size < Heap.maxRequest, let mapped = swm_sys_mmap(Int(bytes &+ extra)) else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    var start = UInt(bitPattern: mapped)
    if extra != 0 {
      let aligned = (start &+ alignment &- 1) & ~(alignment &- 1)
      if aligned > start { _ = swm_sys_munmap(mapped, Int(aligned &- start)) }
      let tail = (start &+ bytes &+ extra) &- (aligned &+ bytes)
      if tail > 0 { _ = swm_sys_munmap(RawPtr(bitPattern: aligned &+ bytes), Int(tail)) }
      start = aligned
    }
    guard let span = Meta.allocSpan() else {
      _ = swm_sys_munmap(RawPtr(bitPattern: start), Int(bytes))
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    span.pointee.start = start
    span.pointee.pages = bytes &>> OSMemory.pageShift
    span.pointee.kind = SpanKind.mmap
    if !PageMap.set(start, pages: 1, to: span) {
      Meta.freeSpan(span)
      _ = swm_sys_munmap(RawPtr(bitPattern: start), Int(bytes))
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let state = Heap.state
    _ = swm_atomic_add(&state.pointee.largeBytes, bytes)
    _ = swm_atomic_add(&state.pointee.largeCount, 1)
    return RawPtr(bitPattern: start)  // fresh mappings read zero: no memset for calloc
  }

  static func free(_ span: SpanPtr) {
    let start = span.pointee.start
    let bytes = span.pointee.bytes
    _ = PageMap.set(start, pages: 1, to: tombstone)
    Meta.freeSpan(span)
    _ = swm_sys_munmap(RawPtr(bitPattern: start), Int(bytes))
    let state = Heap.state
    _ = swm_atomic_add(&state.pointee.largeBytes, 0 &- bytes)
    _ = swm_atomic_add(&state.pointee.largeCount, 0 &- 1)
  }

  /// Resizes with mremap (moving if need be). nil, with the block intact,
  /// when the kernel refuses.
  static func resize(_ span: SpanPtr, to size: UInt) -> RawPtr? {
    let bytes = (size &+ OSMemory.pageMask) & ~OSMemory.pageMask
    let old = span.pointee.start
    let oldBytes = span.pointee.bytes
    if bytes == oldBytes { return RawPtr(bitPattern: old) }
    guard let moved = swm_sys_mremap(RawPtr(bitPattern: old), Int(oldBytes), Int(bytes), 1) else { return nil }
    let start = UInt(bitPattern: moved)
    if start != old {
      _ = PageMap.set(old, pages: 1, to: tombstone)
      if !PageMap.set(start, pages: 1, to: span) {
        Diagnostics.fatal("realloc()", "page map exhausted for", moved)
      }
    }
    span.pointee.start = start
    span.pointee.pages = bytes &>> OSMemory.pageShift
    _ = swm_atomic_add(&Heap.state.pointee.largeBytes, bytes &- oldBytes)
    return moved
  }
}
