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

  /// In secure mode the block has a guard page (PROT_NONE) on each side: the
  /// one after it is counted in the span (`guarded`, see Span.userPages), the
  /// one before it is unmapped with it.
  static func allocate(_ size: UInt, alignment: UInt, zeroed: Bool?) -> RawPtr? {
    let guards = Heap.state.pointee.secure != 0
    let userBytes = max(OSMemory.pageSize, (size &+ OSMemory.pageMask) & ~OSMemory.pageMask)
    let bytes = guards ? userBytes &+ OSMemory.pageSize : userBytes  // span bytes, trailing guard included
    var lead = guards ? OSMemory.pageSize : 0                         // leading guard
    let extra = alignment > OSMemory.pageSize ? alignment : 0
    guard size < Heap.maxRequest, let mapped = swm_sys_mmap(Int(lead &+ bytes &+ extra)) else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let mappedStart = UInt(bitPattern: mapped)
    let mappedEnd = mappedStart &+ lead &+ bytes &+ extra
    var start = mappedStart &+ lead
    if extra != 0 { start = (start &+ alignment &- 1) & ~(alignment &- 1) }
    if start &- lead > mappedStart { _ = swm_sys_munmap(mapped, Int(start &- lead &- mappedStart)) }
    if start &+ bytes < mappedEnd { _ = swm_sys_munmap(RawPtr(bitPattern: start &+ bytes), Int(mappedEnd &- start &- bytes)) }
    var guarded = false
    if guards {
      guarded = installGuards(before: start, after: start &+ userBytes)
      // No guards (budget spent): the trailing page is simply part of the
      // block, and the leading one goes back at once.
      if !guarded { _ = swm_sys_munmap(RawPtr(bitPattern: start &- lead), Int(lead)) }
      lead = guarded ? lead : 0
    }
    guard let span = Meta.allocSpan() else {
      _ = swm_sys_munmap(RawPtr(bitPattern: start &- lead), Int(lead &+ bytes))
      if guarded { swm_guard_unmapped(2) }
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    span.pointee.start = start
    span.pointee.pages = bytes &>> OSMemory.pageShift
    span.pointee.kind = SpanKind.mmap
    span.pointee.guarded = guarded
    if !PageMap.set(start, pages: 1, to: span) {
      Meta.freeSpan(span)
      _ = swm_sys_munmap(RawPtr(bitPattern: start &- lead), Int(lead &+ bytes))
      if guarded { swm_guard_unmapped(2) }
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let state = Heap.state
    swm_atomic_max(&state.pointee.largeBytesPeak, swm_atomic_add(&state.pointee.largeBytes, bytes) &+ bytes)
    swm_atomic_max(&state.pointee.largeCountPeak, swm_atomic_add(&state.pointee.largeCount, 1) &+ 1)
    return RawPtr(bitPattern: start)  // fresh mappings read zero: no memset for calloc
  }

  static func free(_ span: SpanPtr) {
    let start = span.pointee.start
    let bytes = span.pointee.bytes
    raiseThreshold(freedBytes: span.pointee.userPages &<< OSMemory.pageShift)
    let lead = span.pointee.guarded ? OSMemory.pageSize : 0
    _ = PageMap.set(start, pages: 1, to: tombstone)
    Meta.freeSpan(span)
    _ = swm_sys_munmap(RawPtr(bitPattern: start &- lead), Int(lead &+ bytes))
    if lead != 0 { swm_guard_unmapped(2) }
    let state = Heap.state
    _ = swm_atomic_add(&state.pointee.largeBytes, 0 &- bytes)
    _ = swm_atomic_add(&state.pointee.largeCount, 0 &- 1)
  }

  /// Makes the pages before and after a block guards: both or neither.
  private static func installGuards(before: UInt, after: UInt) -> Bool {
    let page = Int(OSMemory.pageSize)
    guard swm_guard_install(RawPtr(bitPattern: after), page) != 0 else { return false }
    if swm_guard_install(RawPtr(bitPattern: before &- OSMemory.pageSize), page) != 0 { return true }
    _ = swm_guard_remove(RawPtr(bitPattern: after), page)
    return false
  }

  /// glibc's dynamic threshold: a program that frees an mmap block of n
  /// bytes (up to 32 MiB) will likely ask for n again, so from now on blocks
  /// of that size come from the heap (no mmap, munmap and page faults for
  /// each), and the trim threshold follows at twice that. Unless mallopt or
  /// the environment set a threshold (then it is pinned).
  static func raiseThreshold(freedBytes: UInt) {
    let state = Heap.state
    if state.pointee.mmapThresholdPinned != 0 || freedBytes <= state.pointee.mmapThreshold
        || freedBytes > Options.maxMmapThreshold { return }
    swm_lock(PageHeap.lock)
    if state.pointee.mmapThresholdPinned == 0 && freedBytes > state.pointee.mmapThreshold {
      state.pointee.mmapThreshold = freedBytes &+ 1  // that very size now comes from the heap
      if state.pointee.trimThresholdPinned == 0 { state.pointee.trimThreshold = 2 &* freedBytes }
      Options.updateSmallLimit()
    }
    swm_unlock(PageHeap.lock)
  }

  /// Resizes with mremap (moving if need be). nil, with the block intact,
  /// when the kernel refuses.
  static func resize(_ span: SpanPtr, to size: UInt) -> RawPtr? {
    let bytes = max(OSMemory.pageSize, (size &+ OSMemory.pageMask) & ~OSMemory.pageMask)
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
    let state = Heap.state
    swm_atomic_max(&state.pointee.largeBytesPeak, swm_atomic_add(&state.pointee.largeBytes, bytes &- oldBytes) &+ (bytes &- oldBytes))
    return moved
  }
}
