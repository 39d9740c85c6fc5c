// swift-tools-version:6.3
// 6.3: the sources use @c (SE-0495, Swift 6.3) and InlineArray with integer
// generic parameters (Swift 6.2).
// The hosted build of the allocator core, for `swift test`. The shipped
// library is built by the Makefile (Embedded Swift, no runtime); SwiftPM's
// own .dynamic product would link libswiftCore and export runtime symbols, so
// this package declares no library product for it.
import PackageDescription

let package = Package(
  name: "swiftmalloc",
  products: [
    // The pool family (region pools, slab caches, memory reserves, static
    // heaps) as a Swift library over the hosted copy of the allocator.
    .library(name: "SwiftMallocPools", targets: ["SwiftMallocPools"]),
    // The `swiftmalloc` command (run, compare, top): hosted Swift, built by
    // `make` into build/bin; never linked into the library.
    .executable(name: "swiftmalloc", targets: ["SwiftMallocCLI"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
  ],
  targets: [
    // The C shim without its exports: a test process keeps glibc's malloc
    // and reaches ours through the swmcore_ functions.
    .target(
      name: "CShim",
      path: "Sources/CShim",
      exclude: ["exports", "secure"],
      sources: ["shim.c", "os.c", "live.c", "state.c", "secure_off.c", "pools.c"],
      publicHeadersPath: "include"
    ),
    .target(
      name: "SwiftMalloc",
      dependencies: ["CShim"],
      path: "Sources/SwiftMalloc",
      // The invariant checker (Invariants.swift) is compiled into test builds only.
      swiftSettings: [.define("SWM_INVARIANTS")]
    ),
    .target(
      name: "SwiftMallocPools",
      dependencies: ["SwiftMalloc", "CShim"],
      path: "Sources/SwiftMallocPools"
    ),
    .executableTarget(
      name: "swift-pools",
      dependencies: ["SwiftMallocPools"],
      path: "examples/swift-pools"
    ),
    // The live page's reader (the layout is Sources/CShim/include/swm_live.h).
    .target(
      name: "CLiveReader",
      path: "Sources/CLiveReader"
    ),
    .executableTarget(
      name: "SwiftMallocCLI",
      dependencies: ["CLiveReader", .product(name: "ArgumentParser", package: "swift-argument-parser")],
      path: "Sources/SwiftMallocCLI"
    ),
    .testTarget(
      name: "PoolTests",
      dependencies: ["SwiftMallocPools", "SwiftMalloc"],
      path: "Tests/PoolTests"
    ),
    .testTarget(
      name: "SwiftMallocTests",
      dependencies: ["SwiftMalloc", "CShim"],
      path: "Tests/SwiftMallocTests"
    ),
  ]
)
