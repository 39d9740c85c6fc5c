import CShim

/// Allocator state that is not per thread. It lives in the zero-initialised
/// block `swm_state()` (swm_shim.h), so it exists before any constructor runs
/// and all-zero is its valid "not yet initialised" value.
///
/// Layout of the block (offsets in bytes):
///   0      GlobalState
///   1024   the dead thread cache: empty bins with limit 0 (ThreadCache.swift)
///   1792   the unmapped tombstone: a Span of kind `unmapped` (LargeBlocks.swift)
///   2048   CentralFreeList x SWM_NUM_CLASSES
///   8192   SpanList x (PageHeap.exactLists + 1): the page heap's free lists
///   12288  the quarantine ring: Secure.quarantineSlots block pointers (Secure.swift)
struct GlobalState {
  // MARK: read on every malloc and free
  /// Requests up to here use size classes: min(SWM_MAX_SMALL, mmapThreshold - 1).
  var smallLimit: UInt
  /// XOR key of the tag written into word 1 of a freed small block. A read
  /// after free can learn it, so it keys nothing else.
  var tagSecret: UInt
  /// Key of the span free-list links and of secure mode's canaries and size
  /// words; drawn apart from tagSecret and never written into a block.
  var keySecret: UInt

  // MARK: options (Options.swift), written at init and by mallopt
  var mmapThreshold: UInt
  var trimThreshold: UInt
  var topPad: UInt
  /// 0 after mallopt(M_MMAP_MAX, 0): every request is served from the heap.
  var mmapEnabled: UInt
  /// Free page-heap bytes that may stay resident at most (the floor of the
  /// limit; PageHeap.dirtyCap scales it with the heap).
  var dirtyLimit: UInt
  /// Set once mallopt or the environment fixed the threshold: the dynamic
  /// rule (LargeBlocks.free) leaves it alone from then on, as glibc does.
  var mmapThresholdPinned: UInt
  var trimThresholdPinned: UInt
  /// When the page heap last looked for dirty spans to decay (ms).
  var lastDecay: UInt
  var statsAtExit: UInt
  /// Secure mode (Secure.swift): SWIFTMALLOC_SECURE=1 or the secure build.
  var secure: UInt
  var initialized: UInt

  // MARK: OS memory (OSMemory.swift), under the page-heap lock
  /// End of the sbrk region we grew last; 0 before the first.
  var sbrkEnd: UInt
  var sbrkBytes: UInt
  var regionMmapBytes: UInt

  // MARK: page heap (PageHeap.swift), under the page-heap lock
  /// Bytes in free spans.
  var freeBytes: UInt
  /// Of those, bytes that read as zero and are not resident (fresh or decommitted).
  var cleanBytes: UInt

  // MARK: mmap blocks (LargeBlocks.swift), atomic
  var largeBytes: UInt
  var largeCount: UInt
  /// The most of each there ever were at once (malloc_stats' "max mmap").
  var largeBytesPeak: UInt
  var largeCountPeak: UInt

  // MARK: metadata arena (MetaArena.swift), under the meta lock
  var metaBump: UInt
  var metaEnd: UInt
  var metaFreeSpans: RawPtr?
  var metaFreeCaches: RawPtr?
  var metaBytes: UInt
  var liveCaches: UInt

  // MARK: secure mode quarantine (Secure.swift), under the quarantine lock
  /// The ring is a FIFO: `quarantineCount` blocks end at `quarantineNext`.
  var quarantineNext: UInt
  var quarantineCount: UInt
  /// Bytes of the blocks in quarantine (free memory in mallinfo2).
  var quarantineBytes: UInt
}

enum Heap {
  /// Larger requests fail with ENOMEM before any arithmetic on them.
  static let maxRequest: UInt = 1 << 46

  @inline(__always)
  static var state: UnsafeMutablePointer<GlobalState> {
    swm_state().assumingMemoryBound(to: GlobalState.self)
  }

  @inline(__always)
  static func region<T>(at offset: Int, as type: T.Type) -> UnsafeMutablePointer<T> {
    (swm_state() + offset).assumingMemoryBound(to: T.self)
  }

  /// Sets defaults, reads the environment, draws the tag key. Runs on the
  /// first slow path (which may precede every constructor): no stdio, no
  /// getenv, no malloc.
  @inline(__always)
  static func ensureInitialized() {
    if state.pointee.initialized == 0 { initialize() }
  }

  /// The first allocation's set-up, then (with no lock held, since
  /// pthread_atfork may allocate) the fork handlers.
  @inline(never)
  private static func initialize() {
    initializeState()
    swm_lifecycle_init()
  }

  /// Gives the calling thread's cached blocks and every class's kept empty
  /// span back to the page heap (malloc_trim, and before failing a request).
  static func releaseCachedMemory() {
    if let cache = ThreadCache.existing() { ThreadCache.flush(cache) }
    Central.releaseEmptySpans()
  }

  private static func initializeState() {
    let lock = swm_lock_at(UInt32(SWM_LOCK_INIT))
    swm_lock(lock)
    defer { swm_unlock(lock) }
    if state.pointee.initialized != 0 { return }
    if MemoryLayout<GlobalState>.size > 1024
      || ThreadCache.binsBytes > 1792 - 1024 || ThreadCache.binsBytes > Int(SWM_FRESH_CACHE_BYTES)
      || MemoryLayout<Span>.stride > Int(Meta.spanBytes)
      || MemoryLayout<CentralFreeList>.stride * Int(SWM_NUM_CLASSES) > 8192 - 2048
      || 8192 + MemoryLayout<SpanList>.stride * (PageHeap.exactLists + 1) > Secure.quarantineOffset
      || Secure.quarantineOffset + 8 * Int(Secure.quarantineSlots) > Int(swm_state_bytes()) {
      Diagnostics.fatal("init", "state block too small", nil)
    }
    let s = state
    s.pointee.mmapThreshold = Options.defaultMmapThreshold
    s.pointee.trimThreshold = Options.defaultTrimThreshold
    s.pointee.topPad = Options.defaultTopPad
    s.pointee.mmapEnabled = 1
    s.pointee.dirtyLimit = Options.defaultDirtyLimit
    s.pointee.secure = swm_secure_built_in() != 0 ? 1 : 0
    Options.loadEnvironment()
    s.pointee.tagSecret = UInt(swm_sys_random()) | 1
    s.pointee.keySecret = UInt(swm_sys_random())
    Options.updateSmallLimit()
    s.pointee.initialized = 1
  }
}
