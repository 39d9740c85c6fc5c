import CShim

// Static heaps (C: swm_static_*, Swift: StaticHeap): a textbook
// explicit-free-list allocator over a caller's buffer, for firmware-like
// code that may not call the system: no system call and no malloc on any
// path (it makes no Core call); all bookkeeping is inside the buffer. One
// thread at a time.
//
// Layout of the buffer (addresses rounded up to 16):
//   StaticHeapHeader | prologue footer (8) | block | block | ... | epilogue header (8)
// A block is `size` bytes (a multiple of 16, at least 32) whose header word
// sits 8 bytes before a 16-aligned payload and whose footer word is its last
// 8 bytes; both hold size | allocated bit. A free block keeps the links of
// the explicit free list (next, prev) in its first 16 payload bytes. The
// prologue footer and epilogue header are "allocated" blocks of size 0, so
// coalescing needs no edge tests.
//   alloc: first fit over the free list (LIFO order); the remainder of a
//          block is split off when it can be a block itself (>= 32 bytes);
//   free:  immediate coalescing with both neighbours through the boundary
//          tags; the result goes to the head of the free list.
// With everything freed, one free block spans the whole buffer again.

// See Malloc.swift for an overview.

struct StaticHeapHeader {
  var magic: UInt
  var first: UInt  // header address of the first block
  var epilogue: UInt  // address of the epilogue header
  var freeHead: UInt  // header address of the first free block, 0 when none
  var used: UInt  // bytes of allocated blocks
}
typealias StaticHeapPtr = UnsafeMutablePointer<StaticHeapHeader>

enum StaticHeaps {
  static let magic: UInt = 0x5357_4D53_5441_5449  // "SWMSTATI"
  static let allocated: UInt = 1
  static let minBlock: UInt = 32
  static var headerBytes: UInt { (UInt(MemoryLayout<StaticHeapHeader>.stride) &+ 15) & ~15 }

  @inline(__always) static func word(_ at: UInt) -> UInt { UnsafePointer<UInt>(bitPattern: at)!.pointee }
  @inline(__always) static func setWord(_ at: UInt, _ v: UInt) { UnsafeMutablePointer<UInt>(bitPattern: at)!.pointee = v }
  @inline(__always) static func size(_ block: UInt) -> UInt { word(block) & ~15 }
  @inline(__always) static func isFree(_ block: UInt) -> Bool { word(block) & allocated == 0 }
  @inline(__always) static func nextLink(_ block: UInt) -> UInt { word(block &+ 8) }
  @inline(__always) static func prevLink(_ block: UInt) -> UInt { word(block &+ 16) }

  /// Writes header and footer.
  @inline(__always)
  static func mark(_ block: UInt, size: UInt, allocated bit: UInt) {
    setWord(block, size | bit)
    setWord(block &+ size &- 8, size | bit)
  }

  static func pushFree(_ heap: StaticHeapPtr, _ block: UInt) {
    let head = heap.pointee.freeHead
    setWord(block &+ 8, head)
    setWord(block &+ 16, 0)
    if head != 0 { setWord(head &+ 16, block) }
    heap.pointee.freeHead = block
  }

  static func removeFree(_ heap: StaticHeapPtr, _ block: UInt) {
    let next = nextLink(block)
    let prev = prevLink(block)
    if prev != 0 { setWord(prev &+ 8, next) } else { heap.pointee.freeHead = next }
    if next != 0 { setWord(next &+ 16, prev) }
  }

  /// Block size for a request, nil when impossible.
  @inline(__always)
  static func blockSize(_ n: UInt) -> UInt? {
    if n > UInt.max &- 64 { return nil }
    return max(minBlock, (n &+ 16 &+ 15) & ~15)
  }

  @inline(__always)
  static func heap(_ handle: OpaquePointer, call: StaticString) -> StaticHeapPtr {
    let heap = StaticHeapPtr(handle)
    if heap.pointee.magic != magic { Diagnostics.fatal(call, "not a static heap", UnsafeRawPointer(heap)) }
    return heap
  }

  /// The block of a payload pointer the caller says is allocated.
  static func block(of p: RawPtr, _ heap: StaticHeapPtr, call: StaticString) -> UInt {
    let address = UInt(bitPattern: p)
    let first = heap.pointee.first
    let end = heap.pointee.epilogue
    if address & 15 != 0 || address < first &+ 8 || address >= end { Diagnostics.invalidPointer(call, p) }
    let block = address &- 8
    let header = word(block)
    let size = header & ~15
    if size < minBlock || header & 14 != 0 || size > end &- block { Diagnostics.invalidPointer(call, p) }
    if header & allocated == 0 { Diagnostics.doubleFree(call, p) }
    if word(block &+ size &- 8) != header { Diagnostics.invalidPointer(call, p) }
    return block
  }

  /// Makes `block` (of `size`, not on the list) free, merging it with free
  /// neighbours.
  static func release(_ heap: StaticHeapPtr, _ block: UInt, size: UInt) {
    var start = block
    var total = size
    let next = block &+ size
    if isFree(next) {
      removeFree(heap, next)
      total &+= StaticHeaps.size(next)
    }
    let prevFooter = word(block &- 8)
    if prevFooter & allocated == 0 {
      let prev = block &- (prevFooter & ~15)
      removeFree(heap, prev)
      start = prev
      total &+= prevFooter & ~15
    }
    mark(start, size: total, allocated: 0)
    pushFree(heap, start)
  }

  /// Allocates `need` bytes of the free block `block`, splitting off the rest.
  static func take(_ heap: StaticHeapPtr, _ block: UInt, need: UInt) {
    let size = StaticHeaps.size(block)
    removeFree(heap, block)
    if size &- need >= minBlock {
      mark(block, size: need, allocated: allocated)
      mark(block &+ need, size: size &- need, allocated: 0)
      pushFree(heap, block &+ need)
      heap.pointee.used &+= need
    } else {
      mark(block, size: size, allocated: allocated)
      heap.pointee.used &+= size
    }
  }

  static func allocate(_ heap: StaticHeapPtr, _ n: UInt) -> RawPtr? {
    guard let need = blockSize(n) else { return nil }
    var b = heap.pointee.freeHead
    while b != 0 {
      if size(b) >= need {
        take(heap, b, need: need)
        return RawPtr(bitPattern: b &+ 8)
      }
      b = nextLink(b)
    }
    return nil
  }

  static func free(_ heap: StaticHeapPtr, _ block: UInt) {
    let size = StaticHeaps.size(block)
    heap.pointee.used &-= size
    // Clear the allocated bit in both tags first: after a merge they remain
    // as stale words, and a second free of the block must read "free".
    mark(block, size: size, allocated: 0)
    release(heap, block, size: size)
  }
}

// MARK: - C API

/// A heap inside `buf` (`len` bytes; the bookkeeping lives in it too), or
/// NULL when the buffer is too small for one block.
@c(swm_static_init)
public func swm_static_init(_ buf: UnsafeMutableRawPointer?, _ len: UInt) -> OpaquePointer? {
  guard let buf else { return nil }
  let base = UInt(bitPattern: buf)
  if len > UInt.max &- base { return nil }
  let end = base &+ len
  let start = (base &+ 15) & ~15
  let overhead = StaticHeaps.headerBytes &+ 8 &+ StaticHeaps.minBlock &+ 8
  if start > end || end &- start < overhead { return nil }
  let prologue = start &+ StaticHeaps.headerBytes
  let first = prologue &+ 8
  let size = (end &- 8 &- first) & ~15
  if size < StaticHeaps.minBlock { return nil }
  let heap = StaticHeapPtr(bitPattern: start)!
  heap.initialize(to: StaticHeapHeader(magic: StaticHeaps.magic, first: first, epilogue: first &+ size, freeHead: 0, used: 0))
  StaticHeaps.setWord(prologue, StaticHeaps.allocated)
  StaticHeaps.setWord(first &+ size, StaticHeaps.allocated)
  StaticHeaps.mark(first, size: size, allocated: 0)
  StaticHeaps.pushFree(heap, first)
  return OpaquePointer(heap)
}

/// 16-byte aligned, or NULL (heap unchanged) when no free block fits.
@c(swm_static_alloc)
public func swm_static_alloc(_ handle: OpaquePointer, _ size: UInt) -> UnsafeMutableRawPointer? {
  StaticHeaps.allocate(StaticHeaps.heap(handle, call: "swm_static_alloc()"), size)
}

@c(swm_static_free)
public func swm_static_free(_ handle: OpaquePointer, _ p: UnsafeMutableRawPointer?) {
  guard let p else { return }
  let heap = StaticHeaps.heap(handle, call: "swm_static_free()")
  StaticHeaps.free(heap, StaticHeaps.block(of: p, heap, call: "swm_static_free()"))
}

/// Grows or shrinks in place when it can (absorbing a free next block),
/// else moves; NULL with the old block intact when nothing fits.
@c(swm_static_realloc)
public func swm_static_realloc(_ handle: OpaquePointer, _ p: UnsafeMutableRawPointer?, _ n: UInt) -> UnsafeMutableRawPointer? {
  let heap = StaticHeaps.heap(handle, call: "swm_static_realloc()")
  guard let p else { return StaticHeaps.allocate(heap, n) }
  let block = StaticHeaps.block(of: p, heap, call: "swm_static_realloc()")
  if n == 0 {
    StaticHeaps.free(heap, block)
    return nil
  }
  guard let need = StaticHeaps.blockSize(n) else { return nil }
  var size = StaticHeaps.size(block)
  if need > size {
    let next = block &+ size
    if StaticHeaps.isFree(next) && size &+ StaticHeaps.size(next) >= need {
      heap.pointee.used &+= StaticHeaps.size(next)
      size &+= StaticHeaps.size(next)
      StaticHeaps.removeFree(heap, next)
      StaticHeaps.mark(block, size: size, allocated: StaticHeaps.allocated)
    } else {
      guard let q = StaticHeaps.allocate(heap, n) else { return nil }
      q.copyMemory(from: p, byteCount: Int(size &- 16))
      StaticHeaps.free(heap, block)
      return q
    }
  }
  if size &- need >= StaticHeaps.minBlock {
    StaticHeaps.mark(block, size: need, allocated: StaticHeaps.allocated)
    heap.pointee.used &-= size &- need
    StaticHeaps.release(heap, block &+ need, size: size &- need)
  }
  return p
}

@c(swm_static_usable_size)
public func swm_static_usable_size(_ handle: OpaquePointer, _ p: UnsafeMutableRawPointer?) -> UInt {
  guard let p else { return 0 }
  let heap = StaticHeaps.heap(handle, call: "swm_static_usable_size()")
  return StaticHeaps.size(StaticHeaps.block(of: p, heap, call: "swm_static_usable_size()")) &- 16
}

/// used: bytes in allocated blocks (headers included); free: bytes in free
/// blocks; largest_free: the largest free block; free_blocks: their number.
@c(swm_static_stats)
public func swm_static_stats(_ handle: OpaquePointer, _ out: UnsafeMutablePointer<swm_pool_static_stats_t>) {
  let heap = StaticHeaps.heap(handle, call: "swm_static_stats()")
  var free: UInt = 0
  var largest: UInt = 0
  var blocks: UInt = 0
  var b = heap.pointee.freeHead
  while b != 0 {
    let size = StaticHeaps.size(b)
    free &+= size
    largest = max(largest, size)
    blocks &+= 1
    b = StaticHeaps.nextLink(b)
  }
  out.pointee = swm_pool_static_stats_t(used: Int(heap.pointee.used), free: Int(free),
                                        largest_free: Int(largest), free_blocks: Int(blocks))
}
