import CShim

// Region pools (C: swm_pool_*, Swift: RegionPool): allocate many small
// objects, free them all at once. The model is the request pool of a web
// server: everything a request needs comes from its pool, and the pool is
// reset or destroyed when the request ends.
//
// Layout: a pool is a chain of blocks of `blockSize` bytes from the core
// (Core.allocate). The first block starts with the pool header (which embeds
// that block's own header); later blocks start with a RegionBlock. Small
// requests (up to `smallLimit` = min(usable bytes of the first block, page
// size - 1)) are served by bumping `last` in a block. A request no block can
// serve adds a block; every block that was walked and could not serve it
// counts a failure, and a block with more than `maxFailures` failures is
// skipped from then on (`current` moves past it), so an allocation never
// walks a long list of nearly full blocks. Larger requests come from the
// core, one each, and are recorded on the large list (nodes bump-allocated
// from the pool) so that reset/destroy, or swm_pool_free, can give them back.
//
// One thread at a time: a pool has no lock.

// See Malloc.swift for an overview.

/// A cleanup registered with swm_pool_cleanup_add: called with its data.
public typealias RegionPoolCleanupHandler = @convention(c) (UnsafeMutableRawPointer?) -> Void
@available(*, deprecated, renamed: "RegionPoolCleanupHandler")
public typealias PoolCleanupHandler = RegionPoolCleanupHandler

struct RegionBlock {
  var last: UInt  // first free byte
  var end: UInt  // one past the block
  var next: UnsafeMutablePointer<RegionBlock>?
  var failed: UInt
}

struct RegionLarge {
  var next: UnsafeMutablePointer<RegionLarge>?
  var block: RawPtr?
}

struct RegionCleanup {
  var next: UnsafeMutablePointer<RegionCleanup>?
  var handler: RegionPoolCleanupHandler?
  var data: RawPtr?
}

struct RegionPoolHeader {
  var first: RegionBlock  // must stay first: the pool pointer is the first block
  var current: UnsafeMutablePointer<RegionBlock>
  var large: UnsafeMutablePointer<RegionLarge>?
  var cleanups: UnsafeMutablePointer<RegionCleanup>?
  var smallLimit: UInt
  var blockSize: UInt
}

typealias RegionPoolPtr = UnsafeMutablePointer<RegionPoolHeader>

enum RegionPools {
  static let maxFailures: UInt = 4
  /// Header bytes of the first block and of the others (multiples of 16).
  static var poolHeaderBytes: UInt { UInt(MemoryLayout<RegionPoolHeader>.stride + 15) & ~15 }
  static var blockHeaderBytes: UInt { UInt(MemoryLayout<RegionBlock>.stride + 15) & ~15 }
  /// Smallest block: the pool header plus 64 usable bytes.
  static var minBlockSize: UInt { poolHeaderBytes &+ 64 }
  static let maxBlockSize: UInt = 1 << 40

  @inline(__always)
  static func pool(_ p: OpaquePointer) -> RegionPoolPtr { RegionPoolPtr(p) }

  /// Bump-allocates from the chain starting at `current`, adding a block
  /// when none fits. `size + alignment` must be at most smallLimit.
  static func allocateSmall(_ pool: RegionPoolPtr, _ size: UInt, alignment: UInt) -> RawPtr? {
    let mask = alignment &- 1
    var block: UnsafeMutablePointer<RegionBlock>? = pool.pointee.current
    while let b = block {
      let p = (b.pointee.last &+ mask) & ~mask
      if p <= b.pointee.end && b.pointee.end &- p >= size {
        b.pointee.last = p &+ size
        return RawPtr(bitPattern: p)
      }
      block = b.pointee.next
    }
    return allocateBlock(pool, size, alignment: alignment)
  }

  @inline(never)
  static func allocateBlock(_ pool: RegionPoolPtr, _ size: UInt, alignment: UInt) -> RawPtr? {
    let blockSize = pool.pointee.blockSize
    guard let memory = Core.allocate(blockSize) else { return nil }
    let start = UInt(bitPattern: memory)
    let mask = alignment &- 1
    let p = (start &+ blockHeaderBytes &+ mask) & ~mask
    let fresh = memory.bindMemory(to: RegionBlock.self, capacity: 1)
    fresh.initialize(to: RegionBlock(last: p &+ size, end: start &+ blockSize, next: nil, failed: 0))
    // Every block from `current` on failed this request; the last block
    // with too many failures moves `current` past itself.
    var b = pool.pointee.current
    var newCurrent = b
    while true {
      b.pointee.failed &+= 1
      if b.pointee.failed > maxFailures { newCurrent = b.pointee.next ?? fresh }
      guard let next = b.pointee.next else { break }
      b = next
    }
    b.pointee.next = fresh
    pool.pointee.current = newCurrent
    return RawPtr(bitPattern: p)
  }

  /// A block of its own from the core, recorded on the large list.
  static func allocateLarge(_ pool: RegionPoolPtr, _ size: UInt, alignment: UInt) -> RawPtr? {
    guard let block = Core.allocate(size, alignment: alignment) else { return nil }
    // Reuse one of the first few nodes freed by swm_pool_free.
    var node = pool.pointee.large
    var looked = 0
    while let n = node, looked < 4 {
      if n.pointee.block == nil {
        n.pointee.block = block
        return block
      }
      node = n.pointee.next
      looked &+= 1
    }
    guard let raw = allocateSmall(pool, UInt(MemoryLayout<RegionLarge>.stride), alignment: 8) else {
      Core.free(block)
      return nil
    }
    let fresh = raw.bindMemory(to: RegionLarge.self, capacity: 1)
    fresh.initialize(to: RegionLarge(next: pool.pointee.large, block: block))
    pool.pointee.large = fresh
    return block
  }

  static func allocate(_ pool: RegionPoolPtr, _ size: UInt, alignment: UInt) -> RawPtr? {
    let limit = pool.pointee.smallLimit
    if size <= limit && alignment <= limit && size &+ alignment <= limit {
      return allocateSmall(pool, size, alignment: alignment)
    }
    return allocateLarge(pool, size, alignment: alignment)
  }

  static func runCleanups(_ pool: RegionPoolPtr) {
    // Registration pushes at the head: walking from it is reverse order.
    var c = pool.pointee.cleanups
    pool.pointee.cleanups = nil
    while let node = c {
      c = node.pointee.next
      if let handler = node.pointee.handler { handler(node.pointee.data) }
    }
  }

  static func freeLarge(_ pool: RegionPoolPtr) {
    var l = pool.pointee.large
    pool.pointee.large = nil
    while let node = l {
      l = node.pointee.next
      if let block = node.pointee.block { Core.free(block) }
    }
  }
}

// MARK: - C API

/// A pool whose blocks are `block_size` bytes (NULL when that is impossible).
@c(swm_pool_create)
public func swm_pool_create(_ blockSize: UInt) -> OpaquePointer? {
  if blockSize > RegionPools.maxBlockSize { return nil }
  let size = (max(blockSize, RegionPools.minBlockSize) &+ 15) & ~15
  guard let memory = Core.allocate(size) else { return nil }
  let pool = memory.bindMemory(to: RegionPoolHeader.self, capacity: 1)
  let start = UInt(bitPattern: memory)
  let dataStart = start &+ RegionPools.poolHeaderBytes
  pool.initialize(to: RegionPoolHeader(
    first: RegionBlock(last: dataStart, end: start &+ size, next: nil, failed: 0),
    current: UnsafeMutableRawPointer(memory).assumingMemoryBound(to: RegionBlock.self),
    large: nil, cleanups: nil,
    smallLimit: min(size &- RegionPools.poolHeaderBytes, Core.pageSize &- 1),
    blockSize: size))
  return OpaquePointer(pool)
}

/// 16-byte aligned.
@c(swm_pool_alloc)
public func swm_pool_alloc(_ pool: OpaquePointer, _ size: UInt) -> UnsafeMutableRawPointer? {
  RegionPools.allocate(RegionPools.pool(pool), size, alignment: 16)
}

/// Unaligned: packed after the previous small allocation.
@c(swm_pool_nalloc)
public func swm_pool_nalloc(_ pool: OpaquePointer, _ size: UInt) -> UnsafeMutableRawPointer? {
  RegionPools.allocate(RegionPools.pool(pool), size, alignment: 1)
}

@c(swm_pool_calloc)
public func swm_pool_calloc(_ pool: OpaquePointer, _ size: UInt) -> UnsafeMutableRawPointer? {
  guard let p = RegionPools.allocate(RegionPools.pool(pool), size, alignment: 16) else { return nil }
  p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
  return p
}

/// `alignment` must be a power of two (else NULL).
@c(swm_pool_memalign)
public func swm_pool_memalign(_ pool: OpaquePointer, _ size: UInt, _ alignment: UInt) -> UnsafeMutableRawPointer? {
  if !isPowerOfTwo(alignment) { return nil }
  return RegionPools.allocate(RegionPools.pool(pool), size, alignment: max(alignment, 1))
}

/// 0 when `p` was a large block of this pool (now freed); -1 otherwise.
@c(swm_pool_free)
public func swm_pool_free(_ pool: OpaquePointer, _ p: UnsafeMutableRawPointer?) -> Int32 {
  guard let p else { return -1 }
  var l = RegionPools.pool(pool).pointee.large
  while let node = l {
    if node.pointee.block == p {
      Core.free(p)
      node.pointee.block = nil
      return 0
    }
    l = node.pointee.next
  }
  return -1
}

/// Runs `handler(data)` on reset and destroy (last registered runs first).
@c(swm_pool_cleanup_add)
public func swm_pool_cleanup_add(_ pool: OpaquePointer, _ handler: RegionPoolCleanupHandler?, _ data: UnsafeMutableRawPointer?) -> Int32 {
  guard let handler else { return -1 }
  let header = RegionPools.pool(pool)
  guard let raw = RegionPools.allocateSmall(header, UInt(MemoryLayout<RegionCleanup>.stride), alignment: 8) else { return -1 }
  let node = raw.bindMemory(to: RegionCleanup.self, capacity: 1)
  node.initialize(to: RegionCleanup(next: header.pointee.cleanups, handler: handler, data: data))
  header.pointee.cleanups = node
  return 0
}

/// Runs the cleanups, frees the large blocks, rewinds every block.
@c(swm_pool_reset)
public func swm_pool_reset(_ pool: OpaquePointer) {
  let header = RegionPools.pool(pool)
  RegionPools.runCleanups(header)
  RegionPools.freeLarge(header)
  let start = UInt(bitPattern: header)
  header.pointee.first.last = start &+ RegionPools.poolHeaderBytes
  header.pointee.first.failed = 0
  var b = header.pointee.first.next
  while let block = b {
    block.pointee.last = UInt(bitPattern: block) &+ RegionPools.blockHeaderBytes
    block.pointee.failed = 0
    b = block.pointee.next
  }
  header.pointee.current = UnsafeMutableRawPointer(header).assumingMemoryBound(to: RegionBlock.self)
}

/// Runs the cleanups and returns everything.
@c(swm_pool_destroy)
public func swm_pool_destroy(_ pool: OpaquePointer?) {
  guard let pool else { return }
  let header = RegionPools.pool(pool)
  RegionPools.runCleanups(header)
  RegionPools.freeLarge(header)
  var b = header.pointee.first.next
  while let block = b {
    b = block.pointee.next
    Core.free(UnsafeMutableRawPointer(block))
  }
  Core.free(UnsafeMutableRawPointer(header))
}
