import CShim

// Slab caches (C: swm_cache_*, Swift: SlabCache<T>): fixed-size objects kept
// in their constructed state, after the kernel's kmem_cache. This file holds
// the structures and their invariants; the concerns live beside it:
//   SlabCache+Slabs.swift      slab layout, colouring, the slab lists, checks
//   SlabCache+Magazines.swift  the per-CPU magazines (the fast path)
//   SlabCache+API.swift        the C entry points (swm_cache_*, swm_slabinfo)
//
// Slabs. A slab is `slabBytes` bytes (a power of two, at least 16 KiB, enough
// for 8 objects) from the core (Core.allocate), aligned to its own size, so
// the slab of an object is `object & ~(slabBytes - 1)`. It begins with a
// SlabHeader, then two arrays indexed by object number:
//   freeStack: UInt32[perSlab]  the numbers of the free objects (a stack);
//   state:     UInt8[perSlab]   1 = free (in the slab or in a magazine), 0 = allocated;
// then the colour padding, then the objects. Free-object tracking lives
// entirely out of line, so a freed object keeps every byte of its constructed
// state: the constructor runs once per object when its slab is created, the
// destructor once when the slab is released (swm_cache_shrink/destroy).
// Colouring: successive slabs start their first object at successive
// multiples of max(64, align) within the slack the slab has left over, so
// objects at the same index in different slabs fall on different cache lines.
//
// Per-CPU magazines (the fast path). Each cache has one magazine per CPU the
// process may run on (up to 64), each a stack of up to 126 free object
// pointers behind its own spinlock; a thread uses the magazine of the CPU it
// runs on (read from glibc's rseq area: one load). An allocation or free is
// one atomic exchange on a lock line that stays in that CPU's cache plus a
// plain store to release it, with no shared counter. An empty
// magazine takes `batch` objects from the slabs under the cache lock; a full
// one gives `batch` back. We chose locked per-CPU magazines over per-thread
// (__thread) ones because a thread-private magazine must be flushed when its
// thread exits and is invisible to swm_cache_shrink/destroy; these are
// always reachable. Lock order: registry, then a magazine, then the cache.
//
// Checks. swm_cache_free finds the slab by masking, confirms with the core
// (Core.ownsPageBlock) that the address starts one of its page blocks before
// reading the slab header, and requires the header to name this cache:
// otherwise "object from another cache". The object's state byte must be 0
// (allocated) and becomes 1: if it was 1 already, the object was freed
// twice. (Plain byte loads and stores: two threads racing to free the same
// object at the same instant may go unreported; every sequential double free
// is caught.)
//
// Invariants (the cache lock held, every magazine drained or counted):
//   slabCount * perSlab == freeInSlabs + |objects in magazines| + |allocated|;
//   freeInSlabs == the sum of the slabs' freeCount;
//   a slab is on `full` when freeCount == 0, on `empty` when freeCount ==
//   perSlab, else on `partial` (its `list` field names that list);
//   state[i] == 1 exactly when object i is on its slab's free stack or in a
//   magazine; the sum of the magazines' `net` is the objects allocated.

// See Malloc.swift for an overview.

/// A constructor or destructor: called with one object.
public typealias SlabCacheCtor = @convention(c) (UnsafeMutableRawPointer?) -> Void
@available(*, deprecated, renamed: "SlabCacheCtor")
public typealias CacheCtor = SlabCacheCtor

struct SlabHeader {
  var magic: UInt
  var cache: UnsafeMutablePointer<SlabCacheHeader>
  var next: UnsafeMutablePointer<SlabHeader>?
  var prev: UnsafeMutablePointer<SlabHeader>?
  var objects: UInt  // address of object 0
  var freeCount: UInt32  // entries on the free stack
  var list: UInt32  // SlabCaches.partialList / fullList / emptyList
}
typealias SlabPtr = UnsafeMutablePointer<SlabHeader>

struct SlabCacheHeader {
  var lockWord: UInt32  // a swm_lock_t; must stay first
  var magazineCount: UInt32  // a power of two
  var magic: UInt
  var next: UnsafeMutablePointer<SlabCacheHeader>?  // registry link
  var objectSize: UInt  // as requested
  var stride: UInt  // objectSize rounded up to align
  var align: UInt
  var slabBytes: UInt
  var perSlab: UInt
  var firstOffset: UInt  // offset of object 0 at colour 0
  var colourStep: UInt
  var colours: UInt
  var nextColour: UInt
  var ctor: SlabCacheCtor?
  var dtor: SlabCacheCtor?
  var partial: SlabPtr?
  var full: SlabPtr?
  var empty: SlabPtr?
  var slabCount: UInt
  var freeInSlabs: UInt
  var magazines: RawPtr
  var name: UnsafeMutablePointer<CChar>
  var reciprocal: UInt  // ceil(2^32 / stride): offset / stride as a multiply (0: divide)
}
typealias CachePtr = UnsafeMutablePointer<SlabCacheHeader>

/// One magazine (its slots follow it).
struct Magazine {
  var lockWord: UInt32  // a swm_pool_spin_lock word; must stay first
  var count: UInt32
  var net: Int  // allocations minus frees through this magazine
}
typealias MagazinePtr = UnsafeMutablePointer<Magazine>

enum SlabCaches {
  static let cacheMagic: UInt = 0x5357_4D43_4143_4845  // "SWMCACHE"
  static let deadMagic: UInt = 0x5357_4D44_4541_4421
  static let slabMagic: UInt = 0x5357_4D53_4C41_4221
  static let partialList: UInt32 = 0
  static let fullList: UInt32 = 1
  static let emptyList: UInt32 = 2
  static let magazineSlots: UInt = 126
  static let batch: UInt = 63
  static let magazineBytes: UInt = 1024  // header + 126 slots, 16 cache lines
  static let maxMagazines: UInt32 = 64
  static let nameBytes: UInt = 32
  static let minSlab: UInt = 16384
  static let maxObject: UInt = 1 << 30
  static var slabHeaderBytes: UInt { UInt(MemoryLayout<SlabHeader>.stride) }

  /// The swm_lock_t at `raw` (a cache header, or the registry).
  @inline(__always)
  static func lock(_ raw: UnsafeMutableRawPointer) -> UnsafeMutablePointer<swm_lock_t> {
    raw.assumingMemoryBound(to: swm_lock_t.self)
  }

  /// The registry of live slab caches and memory reserves (pools.c): its
  /// lock, then the head of each list.
  static var registry: UnsafeMutableRawPointer { UnsafeMutableRawPointer(swm_pool_registry()) }
  static var registryHead: UnsafeMutablePointer<CachePtr?> {
    (registry + 8).assumingMemoryBound(to: CachePtr?.self)
  }

  /// Links a new cache into the registry.
  static func register(_ cache: CachePtr) {
    let registryLock = lock(registry)
    swm_lock(registryLock)
    cache.pointee.next = registryHead.pointee
    registryHead.pointee = cache
    swm_unlock(registryLock)
  }

  /// Unlinks a cache from the registry (nothing when it is not there).
  static func unregister(_ cache: CachePtr) {
    let registryLock = lock(registry)
    swm_lock(registryLock)
    var link = registryHead
    while let c = link.pointee {
      if c == cache {
        link.pointee = c.pointee.next
        break
      }
      link = withUnsafeMutablePointer(to: &c.pointee.next) { $0 }
    }
    swm_unlock(registryLock)
  }
}
