import SwiftMalloc

/// A region pool (C: `swm_pool_*`), an arena allocator: many small
/// allocations bump-allocated from chained blocks, released all at once by
/// `reset()` or when the pool goes away. Use one per request, per frame or
/// per parse: allocation is a pointer bump and there is no per-object free.
///
/// Memory from the pool is raw: values stored in it are not deinitialized,
/// so keep to trivial types or register a cleanup. One thread at a time.
///
/// ```swift
/// let pool = RegionPool(blockSize: 16 * 1024)!
/// let header = pool.create(RequestHeader(method: 1, length: 0))!
/// let body = pool.allocate(byteCount: 512)!
/// pool.reset()   // header and body are gone; the blocks are reused
/// ```
public struct RegionPool: ~Copyable {
  /// The C handle (`swm_pool_t *`).
  public let handle: OpaquePointer

  /// A pool with blocks of `blockSize` bytes; nil when that is impossible
  /// or memory is out. Requests above min(blockSize, page size - 1) are
  /// served one by one from the allocator and freed with the pool.
  public init?(blockSize: Int = 4096) {
    guard blockSize >= 0, let h = swm_pool_create(UInt(blockSize)) else { return nil }
    handle = h
  }

  deinit { swm_pool_destroy(handle) }

  /// `byteCount` bytes aligned to `alignment` (a power of two), or nil.
  public func allocate(byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer? {
    guard byteCount >= 0, alignment > 0 else { return nil }
    if alignment == 16 { return swm_pool_alloc(handle, UInt(byteCount)) }
    return swm_pool_memalign(handle, UInt(byteCount), UInt(alignment))
  }

  /// `byteCount` zeroed bytes, 16-byte aligned.
  public func allocateZeroed(byteCount: Int) -> UnsafeMutableRawPointer? {
    guard byteCount >= 0 else { return nil }
    return swm_pool_calloc(handle, UInt(byteCount))
  }

  /// Uninitialized memory for `count` values of `T`, suitably aligned.
  public func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T>? {
    let (bytes, overflow) = MemoryLayout<T>.stride.multipliedReportingOverflow(by: count)
    guard count >= 0, !overflow,
          let raw = allocate(byteCount: bytes, alignment: max(MemoryLayout<T>.alignment, 16)) else { return nil }
    return raw.bindMemory(to: T.self, capacity: count)
  }

  /// A copy of `value` in the pool.
  public func create<T>(_ value: T) -> UnsafeMutablePointer<T>? {
    guard let p = allocate(T.self) else { return nil }
    p.initialize(to: value)
    return p
  }

  /// Frees a large allocation early; false when `p` is not one.
  @discardableResult
  public func free(_ p: UnsafeMutableRawPointer) -> Bool { swm_pool_free(handle, p) == 0 }

  /// Runs `handler(data)` on the next reset and when the pool goes away
  /// (the last registered runs first).
  @discardableResult
  public func addCleanup(_ handler: @convention(c) (UnsafeMutableRawPointer?) -> Void,
                         data: UnsafeMutableRawPointer? = nil) -> Bool {
    swm_pool_cleanup_add(handle, handler, data) == 0
  }

  /// Runs the cleanups, frees the large allocations and rewinds every block.
  public func reset() { swm_pool_reset(handle) }
}
