import CShim
import SwiftMalloc

/// A static heap (C: `swm_static_*`): an allocator inside one fixed buffer
/// (boundary tags, first fit over an explicit free list, immediate
/// coalescing). No system call and no malloc happens on any of its paths, so
/// it suits signal handlers, real-time loops and memory set aside up front.
/// One thread at a time.
///
/// ```swift
/// let heap = StaticHeap(capacity: 64 * 1024)!
/// let p = heap.allocate(byteCount: 100)!
/// let q = heap.reallocate(p, byteCount: 400)!
/// heap.free(q)
/// print(heap.statistics.freeBlocks)   // 1: the whole buffer again
/// ```
public struct StaticHeap: ~Copyable {
  /// The C handle (`swm_static_t *`).
  public let handle: OpaquePointer
  private let owned: UnsafeMutableRawPointer?

  /// The figures of `swm_static_stats`.
  public struct Statistics: Sendable {
    /// Bytes in allocated blocks (headers included).
    public var used: Int
    /// Bytes in free blocks.
    public var free: Int
    /// The largest free block.
    public var largestFree: Int
    /// How many free blocks there are.
    public var freeBlocks: Int
  }

  /// A heap over a buffer of `capacity` bytes that it owns.
  public init?(capacity: Int) {
    guard capacity > 0 else { return nil }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    guard let h = swm_static_init(buffer, UInt(capacity)) else {
      buffer.deallocate()
      return nil
    }
    handle = h
    owned = buffer
  }

  /// A heap inside a caller's buffer, which must outlive it. The heap keeps
  /// its bookkeeping in the buffer.
  public init?(buffer: UnsafeMutableRawBufferPointer) {
    guard let base = buffer.baseAddress, let h = swm_static_init(base, UInt(buffer.count)) else { return nil }
    handle = h
    owned = nil
  }

  deinit { owned?.deallocate() }

  /// `byteCount` bytes, 16-byte aligned; nil (heap unchanged) when no free
  /// block is large enough.
  public func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
    guard byteCount >= 0 else { return nil }
    return swm_static_alloc(handle, UInt(byteCount))
  }

  /// A copy of `value` in the heap.
  public func create<T>(_ value: T) -> UnsafeMutablePointer<T>? {
    guard MemoryLayout<T>.alignment <= 16, let raw = allocate(byteCount: MemoryLayout<T>.size) else { return nil }
    let p = raw.bindMemory(to: T.self, capacity: 1)
    p.initialize(to: value)
    return p
  }

  /// Frees `p`; aborts on a pointer the heap did not hand out or a double free.
  public func free(_ p: UnsafeMutableRawPointer) { swm_static_free(handle, p) }

  /// Resizes in place when it can, else moves; nil (and `p` intact) when
  /// nothing fits.
  public func reallocate(_ p: UnsafeMutableRawPointer?, byteCount: Int) -> UnsafeMutableRawPointer? {
    guard byteCount >= 0 else { return nil }
    return swm_static_realloc(handle, p, UInt(byteCount))
  }

  /// The bytes usable at `p`.
  public func usableSize(_ p: UnsafeMutableRawPointer) -> Int { Int(swm_static_usable_size(handle, p)) }

  public var statistics: Statistics {
    var s = swm_pool_static_stats_t()
    swm_static_stats(handle, &s)
    return Statistics(used: s.used, free: s.free, largestFree: s.largest_free, freeBlocks: s.free_blocks)
  }
}
