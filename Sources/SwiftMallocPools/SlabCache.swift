import SwiftMalloc

/// A slab cache of `T` values (C: `swm_cache_*`): fixed-size objects packed
/// into slabs, handed out and taken back in a few nanoseconds through per-CPU
/// magazines. Thread-safe. Use it for objects made and dropped at a high rate
/// (nodes, connections, messages).
///
/// `allocate(initializingTo:)` / `deallocate(_:)` give typed values. The C
/// cache keeps objects in their constructed state between uses; from Swift,
/// use `allocateRaw()` with a C constructor passed to `init` to get that.
///
/// ```swift
/// let nodes = SlabCache<Node>(name: "node")!
/// let n = nodes.allocate(initializingTo: Node(key: 1, next: nil))!
/// n.pointee.key += 1
/// nodes.deallocate(n)   // deinitializes, then frees
/// ```
public struct SlabCache<T>: ~Copyable, @unchecked Sendable {
  /// The C handle (`swm_cache_t *`).
  public let handle: OpaquePointer

  /// A cache named `name` (shown by `swm_slabinfo`). `constructor` runs on
  /// each object when its slab is made, `destructor` when the slab is
  /// released (for `allocateRaw`/`deallocateRaw` users).
  public init?(name: String = "swift-objects",
               constructor: (@convention(c) (UnsafeMutableRawPointer?) -> Void)? = nil,
               destructor: (@convention(c) (UnsafeMutableRawPointer?) -> Void)? = nil) {
    let size = UInt(max(MemoryLayout<T>.size, 1))
    let align = UInt(max(MemoryLayout<T>.alignment, 16))
    guard let h = name.withCString({ swm_cache_create($0, size, align, constructor, destructor) }) else { return nil }
    handle = h
  }

  /// Destroys the cache; objects still allocated are reported on stderr
  /// (and their memory is kept).
  deinit { _ = swm_cache_destroy(handle) }

  /// An object initialized to `value`, or nil when memory is out.
  public func allocate(initializingTo value: consuming T) -> UnsafeMutablePointer<T>? {
    guard let raw = swm_cache_alloc(handle) else { return nil }
    let p = raw.bindMemory(to: T.self, capacity: 1)
    p.initialize(to: value)
    return p
  }

  /// Deinitializes `object` and gives it back. Aborts when it did not come
  /// from this cache or was already given back.
  public func deallocate(_ object: UnsafeMutablePointer<T>) {
    object.deinitialize(count: 1)
    swm_cache_free(handle, UnsafeMutableRawPointer(object))
  }

  /// An object in its constructed (or last-used) state.
  public func allocateRaw() -> UnsafeMutableRawPointer? { swm_cache_alloc(handle) }

  /// Gives back an object from `allocateRaw()` as it is.
  public func deallocateRaw(_ object: UnsafeMutableRawPointer) { swm_cache_free(handle, object) }

  /// Releases the empty slabs; returns the bytes given back.
  @discardableResult
  public func shrink() -> Int { Int(swm_cache_shrink(handle)) }
}

/// The slab cache's former name.
@available(*, deprecated, renamed: "SlabCache")
public typealias ObjectCache<T> = SlabCache<T>

/// Writes the table of every slab cache (like /proc/slabinfo) to `fd`.
public func writeSlabInfo(to fd: Int32 = 1) { swm_slabinfo(fd) }
