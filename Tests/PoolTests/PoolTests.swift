import Testing
import Foundation
import Dispatch
@testable import SwiftMalloc
import SwiftMallocPools
import CShim

// MARK: - region pools

nonisolated(unsafe) var cleanupLog: [Int] = []
let cleanupLock = NSLock()

@Suite(.serialized) struct RegionPoolTests {
  struct Point { var x: Double; var y: Double }

  @Test func bumpAllocationAndReset() {
    let pool = RegionPool(blockSize: 4096)!
    var last: UnsafeMutableRawPointer? = nil
    for i in 0..<2000 {
      let p = pool.allocate(byteCount: i % 200 + 1)!
      #expect(UInt(bitPattern: p) % 16 == 0)
      #expect(p != last)
      p.initializeMemory(as: UInt8.self, repeating: 0xEE, count: i % 200 + 1)
      last = p
    }
    let point = pool.create(Point(x: 1, y: 2))!
    #expect(point.pointee.y == 2)
    let zeroed = pool.allocateZeroed(byteCount: 64)!.assumingMemoryBound(to: UInt8.self)
    #expect((0..<64).allSatisfy { zeroed[$0] == 0 })
    let aligned = pool.allocate(byteCount: 10, alignment: 512)!
    #expect(UInt(bitPattern: aligned) % 512 == 0)
    pool.reset()
    let first = pool.allocate(byteCount: 8)
    pool.reset()
    #expect(pool.allocate(byteCount: 8) == first)
  }

  @Test func largeBlocks() {
    let pool = RegionPool(blockSize: 1024)!
    let big = pool.allocate(byteCount: 1 << 20)!
    big.initializeMemory(as: UInt8.self, repeating: 1, count: 1 << 20)
    let freed = pool.free(big)
    let freedTwice = pool.free(big)
    #expect(freed)
    #expect(!freedTwice)
    #expect(pool.allocate(byteCount: Int.max) == nil)
    #expect(pool.allocate(Point.self, count: Int.max / 8) == nil)
  }

  @Test func cleanupsRunInReverse() {
    cleanupLog = []
    do {
      let pool = RegionPool()!
      for i in 1...3 {
        pool.addCleanup({ data in cleanupLog.append(Int(bitPattern: data)) }, data: UnsafeMutableRawPointer(bitPattern: i))
      }
      pool.reset()
      #expect(cleanupLog == [3, 2, 1])
      pool.addCleanup({ data in cleanupLog.append(Int(bitPattern: data)) }, data: UnsafeMutableRawPointer(bitPattern: 9))
    }  // deinit destroys
    #expect(cleanupLog == [3, 2, 1, 9])
  }

  @Test func manyBlocksStayFast() {
    // Each request takes most of a block; a block that fails to serve a
    // request more than maxFailures times is skipped from then on, so the
    // search starts near the end of the chain: at most a few blocks from
    // `current` to the last, not one per request made so far.
    let handle = swm_pool_create(4096)!
    for _ in 0..<50_000 { #expect(swm_pool_alloc(handle, 3000) != nil) }
    let pool = RegionPoolPtr(handle)
    var searched = 0
    var block: UnsafeMutablePointer<RegionBlock>? = pool.pointee.current
    while let b = block {
      searched += 1
      block = b.pointee.next
    }
    // (maxFailures is 4: a handful of blocks stay in front of the newest)
    #expect(searched <= 8, "a request walks \(searched) blocks")
    swm_pool_destroy(handle)
  }
}

// MARK: - slab caches

struct Connection {
  var id: Int
  var open: Bool
  var buffer: (Int, Int, Int, Int)
}

nonisolated(unsafe) var constructed = 0
nonisolated(unsafe) var destructed = 0

@Suite(.serialized) struct SlabCacheTests {
  @Test func typedAllocation() {
    let cache = SlabCache<Connection>(name: "connection")!
    var objects: [UnsafeMutablePointer<Connection>] = []
    for i in 0..<3000 {
      let c = cache.allocate(initializingTo: Connection(id: i, open: true, buffer: (i, i, i, i)))!
      #expect(UInt(bitPattern: c) % 16 == 0)
      objects.append(c)
    }
    #expect(Set(objects.map { UInt(bitPattern: $0) }).count == 3000)
    for (i, c) in objects.enumerated() { #expect(c.pointee.id == i) }
    for c in objects { cache.deallocate(c) }
    #expect(cache.shrink() > 0)
  }

  @Test func constructedStateSurvivesFree() {
    constructed = 0
    destructed = 0
    do {
      let cache = SlabCache<Connection>(
        name: "constructed",
        constructor: { raw in
          raw!.assumingMemoryBound(to: Connection.self).initialize(to: Connection(id: -1, open: false, buffer: (7, 7, 7, 7)))
          constructed += 1
        },
        destructor: { _ in destructed += 1 })!
      let raw = cache.allocateRaw()!
      let made = constructed
      #expect(made > 1)  // the whole slab was constructed at once
      let c = raw.assumingMemoryBound(to: Connection.self)
      #expect(c.pointee.id == -1 && c.pointee.buffer.0 == 7)
      c.pointee.id = 42
      cache.deallocateRaw(raw)
      let again = cache.allocateRaw()!
      #expect(again == raw)
      #expect(again.assumingMemoryBound(to: Connection.self).pointee.id == 42)  // every byte kept
      #expect(constructed == made)
      cache.deallocateRaw(again)
    }
    #expect(destructed == constructed)
  }

  @Test func threads() {
    let cache = SlabCache<Connection>(name: "threaded")!
    let handleBits = UInt(bitPattern: cache.handle)
    let failures = UnsafeMutablePointer<Int>.allocate(capacity: 8)
    failures.initialize(repeating: 0, count: 8)
    let failureBits = UInt(bitPattern: failures)
    DispatchQueue.concurrentPerform(iterations: 8) { t in
      let handle = OpaquePointer(bitPattern: handleBits)!
      let failures = UnsafeMutablePointer<Int>(bitPattern: failureBits)!
      var held: [UnsafeMutableRawPointer] = []
      held.reserveCapacity(64)
      for round in 0..<5000 {
        for i in 0..<(round % 64 + 1) {
          guard let p = swm_cache_alloc(handle) else { failures[t] += 1; continue }
          let c = p.assumingMemoryBound(to: Connection.self)
          c.pointee.id = t * 1_000_000 + i
          held.append(p)
        }
        for (i, p) in held.enumerated() where p.assumingMemoryBound(to: Connection.self).pointee.id != t * 1_000_000 + i {
          failures[t] += 1
        }
        for p in held { swm_cache_free(handle, p) }
        held.removeAll(keepingCapacity: true)
      }
    }
    #expect((0..<8).reduce(0) { $0 + failures[$1] } == 0)
    failures.deallocate()
  }

  @Test func destroyReportsLiveObjects() {
    let handle = swm_cache_create("leaky", 32, 0, nil, nil)!
    _ = swm_cache_alloc(handle)
    _ = swm_cache_alloc(handle)
    #expect(swm_cache_destroy(handle) == 2)
    #expect(swm_cache_create("bad-align", 32, 48, nil, nil) == nil)
  }
}

// MARK: - memory reserves

nonisolated(unsafe) var allocatorFails = false
let flakyAllocate: MemoryReserveAllocFn = { data in allocatorFails ? nil : swmcore_malloc(UInt(bitPattern: data)) }
let flakyFree: MemoryReserveFreeFn = { element, _ in swmcore_free(element) }

@Suite(.serialized) struct MemoryReserveTests {
  @Test func minimumAlwaysSucceeds() {
    allocatorFails = false
    let reserve = MemoryReserve(minimum: 8, context: UnsafeMutableRawPointer(bitPattern: 128),
                                allocate: flakyAllocate, free: flakyFree)!
    allocatorFails = true
    defer { allocatorFails = false }
    let elements = (0..<8).map { _ in reserve.allocate() }
    #expect(elements.allSatisfy { $0 != nil })
    #expect(reserve.allocate() == nil)
    #expect(reserve.allocate(timeoutMilliseconds: 50) == nil)
    for e in elements { reserve.free(e!) }
    // the reserve is full again
    let again = (0..<8).map { _ in reserve.allocate() }
    #expect(again.allSatisfy { $0 != nil })
    for e in again { reserve.free(e!) }
  }

  @Test func creationFailsWhenTheReserveCannotBeFilled() {
    allocatorFails = true
    defer { allocatorFails = false }
    let reserve = MemoryReserve(minimum: 2, context: UnsafeMutableRawPointer(bitPattern: 64),
                                allocate: flakyAllocate, free: flakyFree)
    let created = reserve != nil
    #expect(!created)
  }

  @Test func waiterWakesWhenAnotherThreadFrees() {
    allocatorFails = false
    let reserve = MemoryReserve(minimum: 1, context: UnsafeMutableRawPointer(bitPattern: 64),
                                allocate: flakyAllocate, free: flakyFree)!
    allocatorFails = true
    defer { allocatorFails = false }
    let only = reserve.allocate()!
    let handleBits = UInt(bitPattern: reserve.handle)
    let sent = UInt(bitPattern: only)
    let freer = Thread {
      let handle = OpaquePointer(bitPattern: handleBits)!
      usleep(100_000)
      swm_mempool_free(handle, UnsafeMutableRawPointer(bitPattern: sent))
    }
    let start = Date()
    freer.start()
    let got = reserve.allocate(wait: true)
    #expect(got == only)
    #expect(Date().timeIntervalSince(start) >= 0.05)
    reserve.free(got!)
  }

  @Test func threadsShareTheReserve() {
    allocatorFails = false
    let reserve = MemoryReserve(minimum: 4, context: UnsafeMutableRawPointer(bitPattern: 64),
                                allocate: flakyAllocate, free: flakyFree)!
    allocatorFails = true
    defer { allocatorFails = false }
    let handleBits = UInt(bitPattern: reserve.handle)
    DispatchQueue.concurrentPerform(iterations: 6) { _ in
      let handle = OpaquePointer(bitPattern: handleBits)!
      for _ in 0..<5000 {
        let e = swm_mempool_alloc(handle, 1)!
        e.storeBytes(of: 1, as: Int.self)
        swm_mempool_free(handle, e)
      }
    }
    let resized = reserve.resize(minimum: 2)
    #expect(resized)
  }

  @Test func slabBacked() {
    let cache = SlabCache<Connection>(name: "reserve-objects")!
    do {
      let reserve = MemoryReserve(minimum: 4, cache: cache)!
      let e = reserve.allocate(wait: true)!
      reserve.free(e)
      let resized = reserve.resize(minimum: 10)
      #expect(resized)
    }
  }
}

// MARK: - static heaps

@Suite struct StaticHeapTests {
  @Test func allocateFreeCoalesce() {
    let heap = StaticHeap(capacity: 64 * 1024)!
    let whole = heap.statistics
    #expect(whole.freeBlocks == 1 && whole.used == 0)
    let a = heap.allocate(byteCount: 100)!
    let b = heap.allocate(byteCount: 200)!
    let c = heap.allocate(byteCount: 300)!
    #expect(UInt(bitPattern: a) % 16 == 0 && UInt(bitPattern: b) % 16 == 0)
    #expect(heap.usableSize(b) >= 200)
    heap.free(b)
    heap.free(a)
    heap.free(c)
    #expect(heap.statistics.freeBlocks == 1)
    #expect(heap.statistics.free == whole.free)
    #expect(heap.allocate(byteCount: 1 << 20) == nil)
  }

  @Test func reallocateKeepsContent() {
    let heap = StaticHeap(capacity: 16 * 1024)!
    let p = heap.allocate(byteCount: 64)!
    for i in 0..<64 { p.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self) }
    let q = heap.reallocate(p, byteCount: 5000)!
    #expect((0..<64).allSatisfy { q.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0) })
    #expect(heap.reallocate(q, byteCount: 1 << 20) == nil)  // q intact
    #expect(q.load(fromByteOffset: 63, as: UInt8.self) == 63)
    heap.free(q)
    #expect(heap.statistics.freeBlocks == 1)
  }

  @Test func fragmentationThenFreeAll() {
    var rng = SystemRandomNumberGenerator()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
    defer { buffer.deallocate() }
    let heap = StaticHeap(buffer: buffer)!
    let whole = heap.statistics
    var live: [UnsafeMutableRawPointer] = []
    var full = false
    var rounds = 0
    while !full && rounds < 1_000_000 {
      rounds += 1
      if !live.isEmpty && Int.random(in: 0..<3, using: &rng) == 0 {
        heap.free(live.swapRemoveRandom(using: &rng))
      } else if let p = heap.allocate(byteCount: Int.random(in: 1...3000, using: &rng)) {
        p.storeBytes(of: UInt64(live.count), as: UInt64.self)
        live.append(p)
      } else {
        full = true
      }
    }
    #expect(full)
    #expect(heap.statistics.freeBlocks >= 1)
    while !live.isEmpty { heap.free(live.swapRemoveRandom(using: &rng)) }
    let after = heap.statistics
    #expect(after.freeBlocks == 1)
    #expect(after.free == whole.free && after.largestFree == whole.free && after.used == 0)
  }
}

extension Array {
  mutating func swapRemoveRandom(using rng: inout SystemRandomNumberGenerator) -> Element {
    let i = Int.random(in: 0..<count, using: &rng)
    swapAt(i, count - 1)
    return removeLast()
  }
}
