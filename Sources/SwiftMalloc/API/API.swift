import CShim

// See Malloc.swift for an overview.

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
  allocateSlow(total, alignment: 16, zeroed: true)
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
  let span = Ownership.liveBlock(p, use: .access, call: "realloc()")
  let usable = usableSize(of: p, span: span, call: "realloc()")
  if size >= Heap.maxRequest {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  // With canaries or guard pages the block always moves: the new one gets
  // fresh ones.
  let mitigations = Heap.state.pointee.mitigations
  if !mitigations.canaries && !mitigations.guardPages {
    switch resizeInPlace(p, span: span, usable: usable, to: size) {
    case .done(let q): return q
    case .failed:
      swm_errno_set(swm_ENOMEM())
      return nil
    case .move: break
    }
  } else if mitigations.guardPages && span.pointee.kind == SpanKind.mmap && size > usable,
            case .mmap = Route.decide(size: size), let q = LargeBlocks.moveGrowing(span, to: size) {
    return q  // moved all the same, its pages by mremap
  }
  guard let q = allocate(size) else { return nil }
  q.copyMemory(from: p, byteCount: Int(min(usable, size)))
  deallocate(p, call: "realloc()")
  return q
}

enum InPlace {
  case done(RawPtr)
  case failed
  case move
}

/// realloc without moving, where the block's kind allows it.
private func resizeInPlace(_ p: RawPtr, span: SpanPtr, usable: UInt, to size: UInt) -> InPlace {
  let route = Heap.state.pointee.route
  let belowThreshold = !route.mmapEnabled || size < route.mmapThreshold
  switch span.pointee.kind {
  case SpanKind.small:
    // in place only within the same class: free_sized(p, size) then holds
    let sameClass = Route.smallClass(size: size) == UInt32(span.pointee.sizeClass)
    return size <= usable && sameClass ? .done(p) : .move
  case SpanKind.pageRun:
    let pages = (size &+ OSMemory.pageMask) &>> OSMemory.pageShift
    if size <= usable {
      if pages < span.pointee.pages { Heap.pageHeap.shrinkInPlace(span, pages: pages) }
      return .done(p)
    }
    return belowThreshold && Heap.pageHeap.tryGrowInPlace(span, pages: pages) ? .done(p) : .move
  case SpanKind.mmap:
    // Shrinking stays in place (mremap gives the tail back). Growth to a
    // size below the threshold moves the block to the heap, as a fresh malloc
    // of that size would go: a block shrunk small and then resized again and
    // again would otherwise cost an mremap system call every time. A shrink
    // below the threshold counts as a free of the mapping for the dynamic
    // threshold (Options.mmapBlockFreed): blocks of that size come back.
    if size <= usable && belowThreshold {
      Options.mmapBlockFreed(bytes: span.pointee.userPages &<< OSMemory.pageShift)
    }
    if size <= usable || !belowThreshold {
      if let q = LargeBlocks.resize(span, to: size) { return .done(q) }
      return .failed
    }
    return .move
  default:
    return .move
  }
}

// MARK: - aligned allocation

@inline(__always)
func isPowerOfTwo(_ x: UInt) -> Bool { x != 0 && (x & (x &- 1)) == 0 }

/// A block of `size` bytes aligned to `alignment` (a power of two); NULL
/// with ENOMEM when it cannot be had.
func alignedAllocate(_ alignment: UInt, _ size: UInt) -> RawPtr? {
  if alignment <= 16 { return allocate(size) }
  return allocateSlow(size, alignment: alignment, zeroed: false)
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

/// The bytes the caller may use: the class size, the pages of a run or
/// mmap block (guard page excluded), or with canaries the size asked for.
@inline(__always)
func usableSize(of p: RawPtr, span: SpanPtr, call: StaticString) -> UInt {
  if span.pointee.kind == SpanKind.small {
    let sizeClass = UInt32(span.pointee.sizeClass)
    if Heap.state.pointee.mitigations.canaries { return Canary.check(p, sizeClass: sizeClass, call: call) }
    return UInt(swm_class_to_size(sizeClass))
  }
  if span.pointee.kind == SpanKind.zero { return 0 }
  return span.pointee.userPages &<< OSMemory.pageShift
}

/// malloc_usable_size. Programs that count their memory call it on every
/// allocation and free (Redis built with libc's malloc does), so a small
/// block is answered from its page's facts, with free's own checks (block
/// start, not freed); canaries (secure mode, MALLOC_CHECK_), whose
/// smallLimit is 0, take the full path, which checks the canary.
@c(swmcore_usable_size)
public func swmcore_usable_size(_ p: RawPtr?) -> UInt {
  let address = UInt(bitPattern: p)
  if Heap.state.pointee.route.smallLimit != 0, let small = PageMap.smallFacts(address), small.isSmall {
    _ = Ownership.checkSmallBlock(p.unsafelyUnwrapped, sizeClass: small.sizeClass, offset: small.spanOffset(of: address),
                                  use: .access, call: "malloc_usable_size()")
    return UInt(swm_class_to_size(small.sizeClass))
  }
  return usableSizeSlow(p)
}

@inline(never)
private func usableSizeSlow(_ p: RawPtr?) -> UInt {
  guard let p else { return 0 }
  return usableSize(of: p, span: Ownership.liveBlock(p, use: .access, call: "malloc_usable_size()"),
                    call: "malloc_usable_size()")
}

/// Whether `size` (and `alignment`, 16 for the unaligned calls) is what the
/// block was allocated (or last reallocated) with: a small block's class
/// must be the very class such a request gets (realloc moves a small block
/// whose new size needs another class, so this holds after it too); page
/// runs and mmap blocks are cut to whole pages on allocation and on every
/// resize, so the size must need exactly their page count. Any other size
/// is a caller bug (hardened_malloc's rule; C23 leaves it undefined).
@inline(__always)
func sizeMatches(_ size: UInt, alignment: UInt, span: SpanPtr) -> Bool {
  if size >= Heap.maxRequest { return false }
  if span.pointee.kind == SpanKind.zero { return size == 0 }
  if span.pointee.kind == SpanKind.small {
    let overhead = Heap.state.pointee.mitigations.overhead
    return Route.smallClass(size: size, alignment: alignment, overhead: overhead) == UInt32(span.pointee.sizeClass)
  }
  let pages = (size &+ OSMemory.pageMask) &>> OSMemory.pageShift
  return max(pages, 1) == span.pointee.userPages
}

/// free_sized (C23): a size the block cannot have been allocated with is a
/// caller bug. C++ sized delete comes here for every object, so a small
/// block takes free's own path after one more compare: the class its page's
/// facts name against the class of `size` (secure mode, whose smallLimit is
/// 0, and size 0 take the full check).
@c(swmcore_free_sized)
public func swmcore_free_sized(_ p: RawPtr?, _ size: UInt) {
  guard let p else { return }
  if size &- 1 < Heap.state.pointee.route.smallLimit, let small = PageMap.smallFacts(UInt(bitPattern: p)),
     small.isSmall {
    if swm_size_to_class(Int(bitPattern: size)) != small.sizeClass {
      Diagnostics.fatal("free_sized()", "size mismatch for", p)
    }
    return deallocate(p, call: "free_sized()")
  }
  freeSizedSlow(p, size)
}

@inline(never)
private func freeSizedSlow(_ p: RawPtr, _ size: UInt) {
  let span = Ownership.liveBlock(p, use: .release, call: "free_sized()")
  if !sizeMatches(size, alignment: 16, span: span) { Diagnostics.fatal("free_sized()", "size mismatch for", p) }
  deallocate(p, call: "free_sized()")
}

@c(swmcore_free_aligned_sized)
public func swmcore_free_aligned_sized(_ p: RawPtr?, _ alignment: UInt, _ size: UInt) {
  guard let p else { return }
  let span = Ownership.liveBlock(p, use: .release, call: "free_aligned_sized()")
  if !isPowerOfTwo(alignment) || UInt(bitPattern: p) & (alignment &- 1) != 0 {
    Diagnostics.fatal("free_aligned_sized()", "alignment mismatch for", p)
  }
  if !sizeMatches(size, alignment: max(alignment, 16), span: span) {
    Diagnostics.fatal("free_aligned_sized()", "size mismatch for", p)
  }
  deallocate(p, call: "free_aligned_sized()")
}

// MARK: - tuning

/// mallopt (glibc's parameters; see Options.mallopt).
@c(swmcore_mallopt)
public func swmcore_mallopt(_ param: Int32, _ value: Int32) -> Int32 {
  Heap.ensureInitialized()
  let result = Options.mallopt(param, value)
  LargeBlocks.trimCache(all: false)  // kept mmap blocks a raised threshold (or M_MMAP_MAX 0) left unreachable
  return result
}

/// malloc_trim: the calling thread's cache goes back to the central lists,
/// the sbrk top is cut to `pad`, and every other free page is decommitted.
/// 1 when any memory went back to the OS.
@c(swmcore_malloc_trim)
public func swmcore_malloc_trim(_ pad: UInt) -> Int32 {
  Heap.ensureInitialized()
  Heap.releaseCachedMemory()
  let kept = LargeBlocks.cachedBytes
  LargeBlocks.trimCache(all: true)
  return Heap.pageHeap.trim(pad: pad) || kept != 0 ? 1 : 0
}

/// mallctl("thread.tcache.flush"): the calling thread's cache goes back to
/// the central lists (and its inbox with it).
@c(swmcore_thread_cache_flush)
public func swmcore_thread_cache_flush() {
  if let cache = ThreadCache.existing() { ThreadCache.flush(cache) }
}

@c(swmcore_collect_stats)
public func swmcore_collect_stats(_ out: UnsafeMutablePointer<swm_stats_t>) {
  Heap.ensureInitialized()
  var centralFree: UInt = 0
  var c: UInt32 = 1
  while c < UInt32(SWM_NUM_CLASSES) {
    swm_lock(swm_lock_at(c))
    let central = Central.list(c)
    let size = UInt(swm_class_to_size(c))
    // free blocks, and each span's tail that no block covers
    let tail = UInt(swm_class_span_pages(c)) &<< OSMemory.pageShift &- UInt(swm_class_span_objects(c)) &* size
    centralFree &+= central.pointee.freeBlocks &* size &+ central.pointee.spans &* tail
    swm_unlock(swm_lock_at(c))
    c &+= 1
  }
  // Quarantined blocks (secure mode) are free memory the program cannot reach.
  let quarantined = Heap.state.pointee.mitigations.quarantine ? Quarantine.bytes() : 0
  let os = OSMemory.state
  let heap = Heap.pageHeap
  let pageHeap = heap.state
  swm_lock(heap.lock)
  let arena = os.pointee.sbrkBytes &+ os.pointee.regionMmapBytes
  // (mmap blocks kept for reuse, LargeBlocks+Cache, are outside the arena
  // and outside hblkhd: mapped, free, given back by decay and malloc_trim)
  let free = pageHeap.pointee.unusedBytes &+ centralFree &+ quarantined
  out.pointee.arena = Int(bitPattern: os.pointee.sbrkBytes)
  out.pointee.region_mmap = Int(bitPattern: os.pointee.regionMmapBytes)
  out.pointee.fordblks = Int(bitPattern: free)
  out.pointee.uordblks = Int(bitPattern: arena > free ? arena &- free : 0)
  out.pointee.keepcost = Int(bitPattern: heap.topFreeBytes())
  out.pointee.released = Int(bitPattern: pageHeap.pointee.cleanBytes)
  swm_unlock(heap.lock)
  let large = LargeBlocks.state
  out.pointee.hblks = Int(bitPattern: large.pointee.count)
  out.pointee.hblkhd = Int(bitPattern: large.pointee.bytes)
  out.pointee.hblks_peak = Int(bitPattern: large.pointee.countPeak)
  out.pointee.hblkhd_peak = Int(bitPattern: large.pointee.bytesPeak)
  out.pointee.meta = Int(bitPattern: Meta.state.pointee.bytes)
  out.pointee.threads = Int(bitPattern: Meta.state.pointee.liveCaches)
}

@c(swmcore_background_purge_wanted)
public func swmcore_background_purge_wanted() -> Int32 {
  Heap.ensureInitialized()
  return Heap.state.pointee.options.backgroundPurge ? 1 : 0
}

@c(swmcore_background_purge)
public func swmcore_background_purge() -> UInt {
  LargeBlocks.trimCache(all: false)
  Remote.reclaimIdle()
  return Heap.pageHeap.backgroundRound()
}
