// swiftmalloc: a thread-cached size-class allocator in Embedded Swift.
//
// Overview
// ========
// The structures, from the thread outwards:
//
//   ThreadCache (Front/ThreadCache.swift)   one per thread, in an initial-exec
//       TLS slot; an array of bins, one per size class, each a singly linked
//       list of free blocks. No lock, no atomic.
//   CentralFreeList (Middle/CentralFreeList.swift)   one per size class,
//       behind its own lock: the spans of that class that have free blocks.
//       Blocks move between a thread cache and its central list in batches.
//   PageHeap (Back/PageHeap.swift)   runs of free pages (spans), split on
//       allocation, coalesced on free, behind one lock. Serves new spans for
//       the central lists and page-run blocks for medium requests.
//   OSMemory (Platform/OSMemory.swift)   where pages come from: the sbrk heap,
//       trimmed with a negative sbrk when more than M_TRIM_THRESHOLD lies free
//       at its top; mmap regions when sbrk cannot grow.
//   LargeBlocks (Back/LargeBlocks.swift)   requests of M_MMAP_THRESHOLD and up:
//       one mmap each, munmapped on free, mremapped on realloc.
//   PageMap (Back/PageMap.swift)   page number -> Span, for every page of every
//       allocated page-heap span, the edges of every free span and the first
//       page of every mmap block; a page of a small span also carries its
//       class, its offset in the span and the span's owner, so free() of a
//       small block reads that slot only. free() rejects what the map does
//       not know.
//
// malloc(n), step by step:
//   1. n <= smallLimit: the class comes from a table lookup; pop the thread
//      cache's bin for that class. Done in a few instructions (mallocFast).
//   2. bin empty: fetch a batch from the central list (lock per class).
//   3. central list empty: carve a new span from the page heap (page-heap lock).
//   4. page heap empty: grow the sbrk heap (or map a region).
// Larger requests go to the page heap as a page run (below the mmap
// threshold) or to mmap.
//
// free(p): p's page-map slot gives its class and owner; a small block is
// checked (block start, not already freed) and pushed on the thread cache's bin when this thread
// owns the span (else on the cache's outgoing list for the central list); a
// full bin gives a batch back to the central list, and a span whose blocks are all back goes to
// the page heap, which coalesces it and trims the sbrk top.
//
// The C exports (Sources/CShim/exports) forward each libc name and each swm_
// name to the swmcore_ functions in API/; this file holds the two fast paths.

import CShim

public typealias RawPtr = UnsafeMutableRawPointer

// MARK: - malloc fast path

/// Pops a block from the calling thread's bin; nil means "take the slow path".
@inline(__always)
func mallocFast(_ size: UInt) -> RawPtr? {
  if size <= Heap.state.pointee.smallLimit {
    return popBin(swm_size_to_class(Int(bitPattern: size)))
  }
  return nil
}

/// A block from the calling thread's bin of `sizeClass`, nil when it is
/// empty (or the slot holds a sentinel).
@inline(__always)
func popBin(_ sizeClass: UInt32) -> RawPtr? {
  let bin = swm_tls_get().assumingMemoryBound(to: Bin.self) + Int(sizeClass)
  guard let block = bin.pointee.head else { return nil }
  bin.pointee.head = block.load(as: RawPtr?.self)
  bin.pointee.count &-= 1
  block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)  // clear the freed tag
  return block
}

@inline(__always)
func allocate(_ size: UInt) -> RawPtr? {
  if let block = mallocFast(size) { return block }
  return mallocSlow(size)
}

// MARK: - free fast path

/// Frees `pointer`; nil does nothing. `call` names the API function for
/// messages. A small block needs only its page's SmallFacts (class, offset
/// of its page in the span, owner): the Span struct is not read. NULL needs
/// no test of its own here: page 0 is never in a small span, so it reaches
/// freeSpanBlock, which returns for it.
@inline(__always)
func deallocate(_ pointer: RawPtr?, call: StaticString) {
  let address = UInt(bitPattern: pointer)
  guard let small = PageMap.smallFacts(address) else { return freeSpanBlock(pointer, call: call) }
  if small.isSmall {
    let p = pointer.unsafelyUnwrapped  // page 0 is never small
    let sizeClass = small.sizeClass
    if swm_class_is_block_start(sizeClass, UInt64(small.spanOffset(of: address))) == 0 {
      Diagnostics.invalidPointer(call, p)  // inside a block, or past the span's last block
    }
    let tag = address ^ Heap.state.pointee.tagSecret
    if p.load(fromByteOffset: 8, as: UInt.self) == tag {
      Diagnostics.doubleFree(call, p)
    }
    let cache = swm_tls_get()
    if small.owner == ThreadCache.id(cache) {
      let bin = cache.assumingMemoryBound(to: Bin.self) + Int(sizeClass)
      if bin.pointee.count < bin.pointee.limit {
        p.storeBytes(of: bin.pointee.head, as: RawPtr?.self)
        p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
        bin.pointee.head = p
        bin.pointee.count &+= 1
        return
      }
    }
    freeSmallSlow(p, small: small, call: call)
    return
  }
  freeSpanBlock(pointer, call: call)
}

// MARK: - slow paths

@inline(never)
func mallocSlow(_ size: UInt) -> RawPtr? {
  if let p = mallocSlowOnce(size) { return p }
  // Out of memory (a limit): free blocks parked in this thread's cache and
  // the empty span each class keeps may be all that stands in the way.
  Heap.releaseCachedMemory()
  return mallocSlowOnce(size)
}

@inline(__always)
func mallocSlowOnce(_ size: UInt) -> RawPtr? {
  Heap.ensureInitialized()
  let state = Heap.state
  if state.pointee.secure != 0 { return Secure.allocate(size, zeroed: false) }
  if size <= state.pointee.smallLimit {
    return ThreadCache.allocateSlow(sizeClass: swm_size_to_class(Int(bitPattern: size)))
  }
  if size >= Heap.maxRequest {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  if state.pointee.mmapEnabled != 0 && size >= state.pointee.mmapThreshold {
    // when mmap fails (a limit), the page heap may still have the pages
    if let p = LargeBlocks.allocate(size, alignment: OSMemory.pageSize, zeroed: nil) { return p }
  }
  return PageHeap.allocateRun(size, alignment: OSMemory.pageSize, zeroed: nil)
}

/// free's slow path for a checked small block (few arguments, so that the
/// fast path reaches it by a tail jump).
@inline(never)
func freeSmallSlow(_ p: RawPtr, small: SmallFacts, call: StaticString) {
  let tag = UInt(bitPattern: p) ^ Heap.state.pointee.tagSecret
  if Heap.state.pointee.secure != 0 { return Secure.free(p, sizeClass: small.sizeClass, tag: tag, call: call) }
  p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
  ThreadCache.freeSlow(p, sizeClass: small.sizeClass, owner: small.owner)
}

/// free() of a block that is not a small one: a page run, an mmap block, or
/// a pointer into a span that is free (a double free); or of NULL.
@inline(never)
func freeSpanBlock(_ pointer: RawPtr?, call: StaticString) {
  guard let p = pointer else { return }
  let address = UInt(bitPattern: p)
  guard let span = PageMap.lookup(address) else { Diagnostics.invalidPointer(call, p) }
  switch span.pointee.kind {
  case SpanKind.pageRun:
    if address != span.pointee.start { Diagnostics.invalidPointer(call, p) }
    PageHeap.freeRun(span)
  case SpanKind.mmap:
    if address != span.pointee.start { Diagnostics.invalidPointer(call, p) }
    LargeBlocks.free(span)
  case SpanKind.free:
    if !PageHeap.covers(span, address) { Diagnostics.invalidPointer(call, p) }  // a stale slot
    Diagnostics.doubleFree(call, p)
  case SpanKind.unmapped:
    // a freed mmap block started here (mmap blocks start on a page)
    if address & OSMemory.pageMask == 0 { Diagnostics.doubleFree(call, p) }
    Diagnostics.invalidPointer(call, p)
  default:
    Diagnostics.invalidPointer(call, p)
  }
}
