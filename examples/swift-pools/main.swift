// swift-pools: the pool family from Swift (run with `swift run swift-pools`).
import SwiftMallocPools

struct Header {
  var method: UInt8
  var length: Int
}

struct Node {
  var key: Int
  var next: UnsafeMutablePointer<Node>?
}

// A region pool per request: allocate freely, drop everything at the end.
do {
  let pool = RegionPool(blockSize: 16 * 1024)!
  for request in 0..<3 {
    let header = pool.create(Header(method: 1, length: request * 100))!
    let body = pool.allocate(byteCount: header.pointee.length + 1)!
    body.initializeMemory(as: UInt8.self, repeating: 0x20, count: header.pointee.length + 1)
    print("request \(request): header at \(header), \(header.pointee.length) body bytes")
    pool.reset()
  }
}

// A slab cache of list nodes.
do {
  let nodes = SlabCache<Node>(name: "example-node")!
  var head: UnsafeMutablePointer<Node>? = nil
  for key in 0..<1000 { head = nodes.allocate(initializingTo: Node(key: key, next: head))! }
  writeSlabInfo()
  var sum = 0
  while let n = head {
    sum += n.pointee.key
    head = n.pointee.next
    nodes.deallocate(n)
  }
  print("sum of keys: \(sum); released \(nodes.shrink()) bytes")
}

// A memory reserve: 4 buffers guaranteed even when malloc fails.
do {
  let reserve = MemoryReserve(minimum: 4, elementSize: 4096)!
  let buffers = (0..<4).map { _ in reserve.allocate(wait: true)! }
  print("got \(buffers.count) buffers from the reserve")
  buffers.forEach { reserve.free($0) }
}

// A static heap in a fixed buffer.
do {
  let heap = StaticHeap(capacity: 64 * 1024)!
  let p = heap.allocate(byteCount: 100)!
  let q = heap.reallocate(p, byteCount: 4000)!
  print("usable: \(heap.usableSize(q)), free blocks while in use: \(heap.statistics.freeBlocks)")
  heap.free(q)
  let s = heap.statistics
  print("after free: \(s.freeBlocks) free block of \(s.free) bytes")
}
