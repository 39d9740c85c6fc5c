// swiftmalloc: a thread-cached size-class allocator in Embedded Swift.
//
// Overview
// ========
// The structures, from the thread outwards:
//
//   ThreadCache (Front/ThreadCache.swift)   one per thread, in an initial-exec
//       TLS slot; an array of bins, one per size class, each a singly linked
//       list of free blocks. No lock, no atomic on the fast paths. Beside
//       them, the inbox: where other threads send the blocks they free from
//       this thread's spans (ThreadCache+Remote.swift).
//   CentralFreeList (Middle/CentralFreeList.swift)   one per size class,
//       behind its own lock: the spans of that class that have free blocks.
//       Blocks move between a thread cache and its central list in batches.
//       Central's functions take their site (Middle/CentralSite.swift): the
//       lists, their locks and the page heap below them.
//   PageHeap (Back/PageHeap.swift)   runs of free pages (spans), split on
//       allocation, coalesced on free, behind one lock. Serves new spans for
//       the central lists and page-run blocks for medium requests. A value
//       over its site (its state, lock and PageSource, Back/PageSource.swift):
//       the process's is Heap.pageHeap, over OSMemory; a unit test builds
//       one over a buffer.
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
// Around them:
//   HeapState (Heap.swift)   the whole state: one value of each layer's own
//       State type (Route, Options, Mitigations, the central lists, PageHeap,
//       LargeBlocks, OSMemory, Meta, Quarantine) in static storage C zeroes.
//   Route (Route.swift)   the one decision of where a request goes: size
//       class, page run, mmap block or ENOMEM, for every allocating call.
//   Ownership (API/Ownership.swift)   the one check of what a pointer handed
//       back is (live block, freed, not ours), with one set of messages.
//   Options (Platform/Options.swift)   one table for the environment and
//       mallopt; configuration flows from it to the layers, never back.
//   Mitigations (Mitigations.swift)   secure mode as named switches:
//       canaries (Secure/Canary.swift), quarantine (Secure/Quarantine.swift),
//       guard pages, shuffling, no thread cache.
//   Fork.swift, Sources/CShim/shim.c   fork handlers and the thread-exit key.
//   Invariants.swift   walks every structure against its invariants (test
//       and fuzz builds only).
//
// malloc(n), step by step:
//   1. n <= smallLimit: the class comes from a table lookup; pop the thread
//      cache's bin for that class. Done in a few instructions (mallocFast).
//   2. bin empty: fetch a batch from the central list (lock per class).
//   3. central list empty: carve a new span from the page heap (page-heap lock).
//   4. page heap empty: grow the sbrk heap (or map a region).
// Route.swift decides, for every request that misses the fast path, whether
// it is a size class, a page run (below the mmap threshold) or an mmap block.
//
// free(p): p's page-map slot gives its class and owner; a small block is
// checked (block start, not already freed) and pushed on the thread cache's
// bin when this thread owns the span; else it goes on the cache's outgoing
// list for its owner, which sends a batch at a time to the owner's inbox
// (lock-free; Front/ThreadCache+Remote.swift), or to the central list when
// the owner has none; a full bin gives a batch back to the central list, and
// a span whose blocks are all back goes to the page heap, which coalesces it
// and trims the sbrk top.
//
// The C exports (Sources/CShim/exports) forward each libc name and each swm_
// name to the swmcore_ functions in API/; this file holds the two fast paths.

import CShim

public typealias RawPtr = UnsafeMutableRawPointer

// MARK: - malloc fast path

/// Pops a block from the calling thread's bin; nil means "take the slow path".
@inline(__always)
func mallocFast(_ size: UInt) -> RawPtr? {
  if size <= Heap.state.pointee.route.smallLimit {
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
    let offset = small.spanOffset(of: address)
    let tag = UInt(bitPattern: p) ^ Heap.state.pointee.tagSecret
    if !Ownership.isLiveSmallBlock(p, facts: small, offset: offset, tag: tag) {
      return Ownership.rejectSmallBlock(p, sizeClass: small.sizeClass, offset: offset, use: .release, call: call)
    }
    let cache = swm_tls_get()
    let sizeClass = small.sizeClass
    if small.owner == ThreadCache.id(cache) {
      let bin = (cache + small.classTimes16).assumingMemoryBound(to: Bin.self)  // Bin is 16 bytes
      if bin.pointee.count < bin.pointee.limit {
        p.storeBytes(of: bin.pointee.head, as: RawPtr?.self)
        p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
        bin.pointee.head = p
        bin.pointee.count &+= 1
        return
      }
    } else if small.owner != 0 && ThreadCache.registered(cache) {
      // another thread's span (owner 0: none, and secure mode's spans):
      // onto the outgoing list for it, inline in the common case
      p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
      if Remote.trySend(p, cache: cache, sizeClass: sizeClass, owner: small.owner) { return }
    }
    freeSmallSlow(p, small: small, call: call)
    return
  }
  freeSpanBlock(pointer, call: call)
}

// MARK: - slow paths

@inline(never)
func mallocSlow(_ size: UInt) -> RawPtr? {
  // secure mode's small blocks skip the general routing (false before init)
  if Heap.state.pointee.mitigations.checkedSmallBlocks, let p = Canary.mallocSmall(size) { return p }
  return allocateSlow(size, alignment: 16, zeroed: false)
}

/// Serves a request by its route (Route.decide). Out of memory (a limit),
/// the free blocks parked in this thread's cache and the empty span each
/// class keeps may be all that stands in the way: they go back and the
/// request is tried once more. NULL with ENOMEM when it still fails.
func allocateSlow(_ size: UInt, alignment: UInt, zeroed: Bool) -> RawPtr? {
  Heap.ensureInitialized()
  let mitigations = Heap.state.pointee.mitigations
  let destination = Route.decide(size: size, alignment: alignment, overhead: mitigations.overhead)
  if let p = allocate(size, alignment: alignment, zeroed: zeroed, at: destination, mitigations) {
    if swm_live_on() != 0 { Live.tick() }  // the live page (API/Live.swift)
    return p
  }
  if case .impossible = destination {
    swm_errno_set(swm_ENOMEM())
    return nil
  }
  Heap.releaseCachedMemory()
  return allocate(size, alignment: alignment, zeroed: zeroed, at: destination, mitigations)
}

/// One attempt at a routed request (nil with ENOMEM set when it fails).
private func allocate(_ size: UInt, alignment: UInt, zeroed: Bool, at destination: Route.Destination,
                      _ mitigations: Mitigations) -> RawPtr? {
  switch destination {
  case .sizeClass(let sizeClass):
    if mitigations.checkedSmallBlocks { return Canary.allocate(sizeClass, request: size, zeroed: zeroed) }
    guard let p = allocateClass(sizeClass) else { return nil }
    if zeroed { p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size)) }
    return p
  case .mmap:
    // fresh mappings read zero; when mmap fails (a limit), the page heap may still have the pages
    if let p = LargeBlocks.allocate(size, alignment: max(alignment, OSMemory.pageSize), zeroed: zeroed ? true : nil) {
      return p
    }
    return allocateRun(size, alignment: alignment, zeroed: zeroed, mitigations)
  case .pageRun:
    return allocateRun(size, alignment: alignment, zeroed: zeroed, mitigations)
  case .zeroSize:
    if let p = ZeroBlocks.allocate(alignment: alignment) { return p }
    // no region (an address-space limit): an ordinary block of the smallest class
    return allocate(16, alignment: alignment, zeroed: zeroed, at: Route.decide(size: 16, alignment: alignment,
                                                                                 overhead: mitigations.overhead), mitigations)
  case .impossible:
    swm_errno_set(swm_ENOMEM())
    return nil
  }
}

/// A page run from the page heap (nil with ENOMEM set): with a guard page
/// in secure mode, perturbed (MALLOC_PERTURB_) unless zeroed.
private func allocateRun(_ size: UInt, alignment: UInt, zeroed: Bool, _ mitigations: Mitigations) -> RawPtr? {
  guard let p = Heap.pageHeap.allocateRun(size, alignment: max(alignment, OSMemory.pageSize), zeroed: zeroed ? true : nil,
                                          guardPage: mitigations.guardPages) else { return nil }
  if !zeroed { Mitigations.perturb(p, size, freed: false) }
  return p
}

/// A block of `sizeClass`: the thread cache's bin, else a refill.
@inline(__always)
func allocateClass(_ sizeClass: UInt32) -> RawPtr? {
  if let block = popBin(sizeClass) { return block }
  return ThreadCache.allocateSlow(sizeClass: sizeClass)
}

/// free's slow path for a checked small block (few arguments, so that the
/// fast path reaches it by a tail jump).
@inline(never)
func freeSmallSlow(_ p: RawPtr, small: SmallFacts, call: StaticString) {
  let tag = UInt(bitPattern: p) ^ Heap.state.pointee.tagSecret
  if Heap.state.pointee.mitigations.checkedSmallBlocks {
    return Canary.free(p, sizeClass: small.sizeClass, tag: tag, call: call)
  }
  p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
  ThreadCache.freeSlow(p, sizeClass: small.sizeClass, owner: small.owner)
}

/// free() of a block that is not a small one (a page run or an mmap block),
/// of NULL, or of a pointer Ownership rejects.
@inline(never)
func freeSpanBlock(_ pointer: RawPtr?, call: StaticString) {
  guard let p = pointer else { return }
  let span = Ownership.liveBlock(p, use: .release, call: call)
  switch span.pointee.kind {
  case SpanKind.pageRun:
    Mitigations.perturb(RawPtr(bitPattern: span.pointee.start)!, span.pointee.userPages &<< OSMemory.pageShift, freed: true)
    Heap.pageHeap.freeSpan(span)
    if swm_live_on() != 0 { Live.tick() }
  case SpanKind.mmap:
    Options.mmapBlockFreed(bytes: span.pointee.userPages &<< OSMemory.pageShift)
    LargeBlocks.free(span)
    if swm_live_on() != 0 { Live.tick() }
  case SpanKind.zero:
    return  // a zero-size block: nothing to give back
  default:
    // a small span whose page has no facts: cannot be (facts are written
    // before a block is handed out), so the pointer is not ours
    Diagnostics.invalidPointer(call, p)
  }
}
