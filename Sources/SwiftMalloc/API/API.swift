import CShim

// The C semantics of the malloc family (glibc 2.36+ as reference), one
// swmcore_ function per public name. Sources/CShim/exports/exports.c forwards
// malloc, free, ... and swm_malloc, swm_free, ... here, one line each.
//
// Sizes arrive as UInt (size_t). Every size path either fits the arithmetic
// it does or fails with ENOMEM first: no trap, no wrap.

@c(swmcore_malloc)
public func swmcore_malloc(_ size: UInt) -> RawPtr? {
  allocate(size)
}

@c(swmcore_free)
public func swmcore_free(_ p: RawPtr?) {
  deallocate(p, call: "free()")
}

@c(swmcore_calloc)
public func swmcore_calloc(_ count: UInt, _ size: UInt) -> RawPtr? {
  let (total, overflow) = count.multipliedReportingOverflow(by: size)
  if overflow {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  if let p = mallocFast(total) {
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(total))
    return p
  }
  return callocSlow(total)
}

@inline(never)
func callocSlow(_ total: UInt) -> RawPtr? {
  Heap.ensureInitialized()
  let state = Heap.state
  if state.pointee.secure != 0 { return Secure.allocate(total, zeroed: true) }
  if total <= state.pointee.smallLimit {
    guard let p = mallocSlow(total) else { return nil }
    p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(total))
    return p
  }
  if total >= Heap.maxRequest {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  if state.pointee.mmapEnabled != 0 && total >= state.pointee.mmapThreshold {
    if let p = LargeBlocks.allocate(total, alignment: OSMemory.pageSize, zeroed: true) { return p }
  }
  return PageHeap.allocateRun(total, alignment: OSMemory.pageSize, zeroed: true)
}

@c(swmcore_reallocarray)
public func swmcore_reallocarray(_ p: RawPtr?, _ count: UInt, _ size: UInt) -> RawPtr? {
  let (total, overflow) = count.multipliedReportingOverflow(by: size)
  if overflow {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  return swmcore_realloc(p, total)
}

/// realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL (as
/// glibc does); a block keeps its place while the new size fits in it; on
/// failure the old block is untouched and the result is NULL with ENOMEM.
@c(swmcore_realloc)
public func swmcore_realloc(_ p: RawPtr?, _ size: UInt) -> RawPtr? {
  guard let p else { return allocate(size) }
  if size == 0 {
    deallocate(p, call: "realloc()")
    return nil
  }
  let span = checkedSpan(p, call: "realloc()")
  let usable = usableSize(of: p, span: span, call: "realloc()")
  if size >= Heap.maxRequest {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  // Secure mode always moves: the new block gets fresh canaries and guards.
  if Heap.state.pointee.secure == 0 {
  switch span.pointee.kind {
  case SpanKind.small:
    if size <= usable { return p }
  case SpanKind.pageRun:
    let pages = (size &+ OSMemory.pageMask) &>> OSMemory.pageShift
    if size <= usable {
      if pages < span.pointee.pages { PageHeap.shrinkInPlace(span, pages: pages) }
      return p
    }
    let state = Heap.state
    if (state.pointee.mmapEnabled == 0 || size < state.pointee.mmapThreshold)
        && PageHeap.tryGrowInPlace(span, pages: pages) {
      return p
    }
  case SpanKind.mmap:
    // Shrinking stays in place (mremap gives the tail back). Growth to a
    // size below the threshold moves the block to the heap, as a fresh malloc
    // of that size would go: a block shrunk small and then resized again and
    // again would otherwise cost an mremap system call every time. A shrink
    // below the threshold counts as a free of the mapping for the dynamic
    // threshold (LargeBlocks.raiseThreshold): blocks of that size come back.
    let state = Heap.state
    let belowThreshold = state.pointee.mmapEnabled == 0 || size < state.pointee.mmapThreshold
    if size <= usable && belowThreshold {
      LargeBlocks.raiseThreshold(freedBytes: span.pointee.userPages &<< OSMemory.pageShift)
    }
    if size <= usable || !belowThreshold {
      if let q = LargeBlocks.resize(span, to: size) { return q }
      swm_errno_set(swm_ENOMEM())
      return nil
    }
  default:
    break
  }
  }
  guard let q = allocate(size) else { return nil }
  q.copyMemory(from: p, byteCount: Int(min(usable, size)))
  deallocate(p, call: "realloc()")
  return q
}

// MARK: - aligned allocation

@inline(__always)
func isPowerOfTwo(_ x: UInt) -> Bool { x != 0 && (x & (x &- 1)) == 0 }

/// A block of `size` bytes aligned to `alignment` (a power of two).
func alignedAllocate(_ alignment: UInt, _ size: UInt) -> RawPtr? {
  if alignment <= 16 { return allocate(size) }
  Heap.ensureInitialized()
  if size >= Heap.maxRequest || alignment >= Heap.maxRequest {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  let state = Heap.state
  if state.pointee.secure != 0 { return Secure.allocateAligned(alignment, size) }
  if alignment <= OSMemory.pageSize && size <= state.pointee.smallLimit {
    // Blocks of a class whose size is a multiple of `alignment` are aligned:
    // spans start on a page and blocks sit at multiples of their size.
    var c = swm_size_to_class(Int(bitPattern: max(size, alignment)))
    while c < UInt32(SWM_NUM_CLASSES) && UInt(swm_class_to_size(c)) % alignment != 0 { c &+= 1 }
    if c < UInt32(SWM_NUM_CLASSES) { return allocateClass(c) }
  }
  if state.pointee.mmapEnabled != 0 && size &+ alignment >= state.pointee.mmapThreshold {
    if let p = LargeBlocks.allocate(size, alignment: max(alignment, OSMemory.pageSize), zeroed: nil) { return p }
  }
  return PageHeap.allocateRun(size, alignment: max(alignment, OSMemory.pageSize), zeroed: nil)
}

@inline(__always)
func allocateClass(_ sizeClass: UInt32) -> RawPtr? {
  if let block = popBin(sizeClass) { return block }
  return ThreadCache.allocateSlow(sizeClass: sizeClass)
}

/// posix_memalign: EINVAL (errno unchanged, *memptr untouched) unless the
/// alignment is a power of two multiple of sizeof(void *); ENOMEM when the
/// memory cannot be had, with errno ENOMEM as well (as glibc, whose
/// tst-malloc-thread-fail checks it) and *memptr untouched.
@c(swmcore_posix_memalign)
public func swmcore_posix_memalign(_ memptr: UnsafeMutablePointer<RawPtr?>, _ alignment: UInt, _ size: UInt) -> Int32 {
  if !isPowerOfTwo(alignment) || alignment % UInt(MemoryLayout<RawPtr>.size) != 0 { return swm_EINVAL() }
  guard let p = alignedAllocate(alignment, size) else {
    swm_errno_set(swm_ENOMEM())
    return swm_ENOMEM()
  }
  memptr.pointee = p
  return 0
}

/// aligned_alloc: an alignment that is not a power of two is EINVAL (glibc 2.38).
@c(swmcore_aligned_alloc)
public func swmcore_aligned_alloc(_ alignment: UInt, _ size: UInt) -> RawPtr? {
  if !isPowerOfTwo(alignment) {
    swm_errno_set(swm_EINVAL())
    return nil
  }
  return alignedAllocate(alignment, size)
}

/// memalign: an alignment that is not a power of two is rounded up to one (as
/// glibc does); one above SIZE_MAX / 2 + 1 cannot be served: EINVAL.
@c(swmcore_memalign)
public func swmcore_memalign(_ alignment: UInt, _ size: UInt) -> RawPtr? {
  if alignment > UInt.max / 2 &+ 1 {
    swm_errno_set(swm_EINVAL())
    return nil
  }
  var a: UInt = 16
  while a < alignment { a &<<= 1 }
  return alignedAllocate(a, size)
}

@c(swmcore_valloc)
public func swmcore_valloc(_ size: UInt) -> RawPtr? {
  alignedAllocate(OSMemory.pageSize, size)
}

/// pvalloc: page aligned, size rounded up to whole pages (0 gives one page).
@c(swmcore_pvalloc)
public func swmcore_pvalloc(_ size: UInt) -> RawPtr? {
  if size >= Heap.maxRequest {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  let rounded = max(OSMemory.pageSize, (size &+ OSMemory.pageMask) & ~OSMemory.pageMask)
  return alignedAllocate(OSMemory.pageSize, rounded)
}

// MARK: - sizes

/// The span of a block the caller claims is live; aborts on anything else.
@inline(__always)
func checkedSpan(_ p: RawPtr, call: StaticString) -> SpanPtr {
  let address = UInt(bitPattern: p)
  guard let span = PageMap.lookup(address) else { Diagnostics.invalidPointer(call, p) }
  switch span.pointee.kind {
  case SpanKind.small:
    let sizeClass = UInt32(span.pointee.sizeClass)
    if swm_class_is_block_start(sizeClass, UInt64(address &- span.pointee.start)) == 0 {
      Diagnostics.invalidPointer(call, p)
    }
    if p.load(fromByteOffset: 8, as: UInt.self) == address ^ Heap.state.pointee.tagSecret {
      Diagnostics.fatal(call, "use of freed pointer", p)
    }
  case SpanKind.pageRun, SpanKind.mmap:
    if address != span.pointee.start { Diagnostics.invalidPointer(call, p) }
  case SpanKind.free, SpanKind.unmapped:
    if span.pointee.kind == SpanKind.free && !PageHeap.covers(span, address) {
      Diagnostics.invalidPointer(call, p)  // a stale slot inside a free span
    }
    if address & OSMemory.pageMask == 0 || span.pointee.kind == SpanKind.free {
      Diagnostics.fatal(call, "use of freed pointer", p)
    }
    Diagnostics.invalidPointer(call, p)
  default:
    Diagnostics.invalidPointer(call, p)
  }
  return span
}

@inline(__always)
func usableSize(of p: RawPtr, span: SpanPtr, call: StaticString) -> UInt {
  if span.pointee.kind == SpanKind.small {
    if Heap.state.pointee.secure != 0 { return Secure.checkCanary(p, sizeClass: UInt32(span.pointee.sizeClass), call: call) }
    return UInt(swm_class_to_size(UInt32(span.pointee.sizeClass)))
  }
  return span.pointee.userPages &<< OSMemory.pageShift
}

@c(swmcore_usable_size)
public func swmcore_usable_size(_ p: RawPtr?) -> UInt {
  guard let p else { return 0 }
  return usableSize(of: p, span: checkedSpan(p, call: "malloc_usable_size()"), call: "malloc_usable_size()")
}

/// Whether `size` can be the size a block was allocated (or last
/// reallocated) with. Small blocks keep their class when realloc shrinks them
/// in place, so any size up to the class fits; page runs and mmap blocks are
/// cut to whole pages on allocation and on every resize, so the size must
/// need exactly their page count.
@inline(__always)
func sizeMatches(_ size: UInt, _ p: RawPtr, span: SpanPtr, call: StaticString) -> Bool {
  if span.pointee.kind == SpanKind.small { return size <= usableSize(of: p, span: span, call: call) }
  let pages = (size &+ OSMemory.pageMask) &>> OSMemory.pageShift
  return size < Heap.maxRequest && max(pages, 1) == span.pointee.userPages
}

/// free_sized (C23): a size the block cannot have been allocated with is a
/// caller bug.
@c(swmcore_free_sized)
public func swmcore_free_sized(_ p: RawPtr?, _ size: UInt) {
  guard let p else { return }
  let span = checkedSpan(p, call: "free_sized()")
  if !sizeMatches(size, p, span: span, call: "free_sized()") { Diagnostics.fatal("free_sized()", "size mismatch for", p) }
  deallocate(p, call: "free_sized()")
}

@c(swmcore_free_aligned_sized)
public func swmcore_free_aligned_sized(_ p: RawPtr?, _ alignment: UInt, _ size: UInt) {
  guard let p else { return }
  let span = checkedSpan(p, call: "free_aligned_sized()")
  if !isPowerOfTwo(alignment) || UInt(bitPattern: p) & (alignment &- 1) != 0 {
    Diagnostics.fatal("free_aligned_sized()", "alignment mismatch for", p)
  }
  if !sizeMatches(size, p, span: span, call: "free_aligned_sized()") { Diagnostics.fatal("free_aligned_sized()", "size mismatch for", p) }
  deallocate(p, call: "free_aligned_sized()")
}

// MARK: - tuning

/// mallopt: M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD and M_MMAP_MAX (0
/// turns mmap blocks off) take effect and return 1 (0 for a value out of
/// range); every other parameter, known to glibc or not, is accepted and
/// ignored: 1, as glibc 2.36 returns for a parameter it does not know.
@c(swmcore_mallopt)
public func swmcore_mallopt(_ param: Int32, _ value: Int32) -> Int32 {
  Heap.ensureInitialized()
  let state = Heap.state
  let lock = PageHeap.lock
  swm_lock(lock)
  defer { swm_unlock(lock) }
  switch param {
  case Options.M_MMAP_THRESHOLD:
    if value < 0 || UInt(value) > Options.maxMmapThreshold { return 0 }
    state.pointee.mmapThreshold = UInt(value)
    state.pointee.mmapThresholdPinned = 1
  case Options.M_TRIM_THRESHOLD:
    state.pointee.trimThreshold = value < 0 ? UInt.max : UInt(value)
    state.pointee.trimThresholdPinned = 1
  case Options.M_TOP_PAD:
    if value < 0 { return 0 }
    state.pointee.topPad = UInt(value)
    state.pointee.mmapThresholdPinned = 1
    state.pointee.trimThresholdPinned = 1
  case Options.M_MMAP_MAX:
    if value < 0 { return 0 }
    state.pointee.mmapEnabled = value == 0 ? 0 : 1
    state.pointee.mmapThresholdPinned = 1
  default:
    return 1
  }
  Options.updateSmallLimit()
  return 1
}

/// malloc_trim: the calling thread's cache goes back to the central lists,
/// the sbrk top is cut to `pad`, and every other free page is decommitted.
/// 1 when any memory went back to the OS.
@c(swmcore_malloc_trim)
public func swmcore_malloc_trim(_ pad: UInt) -> Int32 {
  Heap.ensureInitialized()
  Heap.releaseCachedMemory()
  return PageHeap.trim(pad: pad) ? 1 : 0
}

@c(swmcore_collect_stats)
public func swmcore_collect_stats(_ out: UnsafeMutablePointer<swm_stats_t>) {
  Heap.ensureInitialized()
  var centralFree: UInt = 0
  var c: UInt32 = 1
  while c < UInt32(SWM_NUM_CLASSES) {
    swm_lock(swm_lock_at(c))
    centralFree &+= Central.list(c).pointee.freeBlocks &* UInt(swm_class_to_size(c))
    swm_unlock(swm_lock_at(c))
    c &+= 1
  }
  let state = Heap.state
  // Quarantined blocks (secure mode) are free memory the program cannot reach.
  let quarantined = state.pointee.secure != 0 ? Secure.quarantinedBytes() : 0
  swm_lock(PageHeap.lock)
  let arena = state.pointee.sbrkBytes &+ state.pointee.regionMmapBytes
  let free = state.pointee.freeBytes &+ centralFree &+ quarantined
  out.pointee.arena = Int(state.pointee.sbrkBytes)
  out.pointee.region_mmap = Int(state.pointee.regionMmapBytes)
  out.pointee.fordblks = Int(free)
  out.pointee.uordblks = Int(arena > free ? arena &- free : 0)
  out.pointee.keepcost = Int(PageHeap.topFreeBytes())
  out.pointee.released = Int(state.pointee.cleanBytes)
  swm_unlock(PageHeap.lock)
  out.pointee.hblks = Int(state.pointee.largeCount)
  out.pointee.hblkhd = Int(state.pointee.largeBytes)
  out.pointee.hblks_peak = Int(state.pointee.largeCountPeak)
  out.pointee.hblkhd_peak = Int(state.pointee.largeBytesPeak)
  out.pointee.meta = Int(state.pointee.metaBytes)
  out.pointee.threads = Int(state.pointee.liveCaches)
}

@c(swmcore_stats_at_exit)
public func swmcore_stats_at_exit() -> Int32 {
  Int32(truncatingIfNeeded: Heap.state.pointee.statsAtExit)
}
