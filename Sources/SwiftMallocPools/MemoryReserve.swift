import SwiftMalloc

/// A memory reserve (C: `swm_mempool_*`; the kernel's mempool): a guaranteed
/// minimum of elements for code that must make progress when memory runs
/// short, such as the write-back path that frees memory. `allocate` asks the
/// allocator first and falls back to the reserve; `free` refills the
/// reserve. Thread-safe.
///
/// ```swift
/// let reserve = MemoryReserve(minimum: 16, elementSize: 4096)!
/// let buffer = reserve.allocate(wait: true)!   // never nil when waiting
/// defer { reserve.free(buffer) }
/// ```
public struct MemoryReserve: ~Copyable, @unchecked Sendable {
  /// The C handle (`swm_mempool_t *`).
  public let handle: OpaquePointer

  /// A reserve of `minimum` elements of `elementSize` bytes from the allocator.
  public init?(minimum: Int, elementSize: Int) {
    guard minimum >= 0, minimum <= Int(Int32.max), elementSize > 0,
          let h = swm_mempool_create_kmalloc(Int32(minimum), UInt(elementSize)) else { return nil }
    handle = h
  }

  /// A reserve of `minimum` objects of a slab cache (which must outlive it).
  public init?<T>(minimum: Int, cache: borrowing SlabCache<T>) {
    guard minimum >= 0, minimum <= Int(Int32.max),
          let h = swm_mempool_create_slab(Int32(minimum), cache.handle) else { return nil }
    handle = h
  }

  /// A reserve over any element allocator: `allocate(context)` makes an
  /// element (nil when it cannot), `free(element, context)` disposes of one.
  public init?(minimum: Int, context: UnsafeMutableRawPointer? = nil,
               allocate: @escaping MemoryReserveAllocFn, free: @escaping MemoryReserveFreeFn) {
    guard minimum >= 0, minimum <= Int(Int32.max),
          let h = swm_mempool_create(Int32(minimum), allocate, free, context) else { return nil }
    handle = h
  }

  /// Every element must have been freed back first.
  deinit { swm_mempool_destroy(handle) }

  /// An element; nil when both the allocator and the reserve are out, unless
  /// `wait` is true: then it sleeps until another thread frees one.
  public func allocate(wait: Bool = false) -> UnsafeMutableRawPointer? {
    swm_mempool_alloc(handle, wait ? SWM_MEMPOOL_WAIT_FLAG : 0)
  }

  /// Like `allocate(wait: true)`, but nil after `milliseconds`.
  public func allocate(timeoutMilliseconds milliseconds: Int) -> UnsafeMutableRawPointer? {
    swm_mempool_alloc_timeout(handle, milliseconds)
  }

  /// Gives an element back (to the reserve while it is short).
  public func free(_ element: UnsafeMutableRawPointer) { swm_mempool_free(handle, element) }

  /// Sets the guaranteed minimum; false when the new elements could not be made.
  @discardableResult
  public func resize(minimum: Int) -> Bool {
    guard minimum >= 0, minimum <= Int(Int32.max) else { return false }
    return swm_mempool_resize(handle, Int32(minimum)) == 0
  }
}

/// SWM_MEMPOOL_WAIT.
let SWM_MEMPOOL_WAIT_FLAG: Int32 = 1
