// The `swiftmalloc` command: does my program run on swiftmalloc (`run`), is
// it faster or smaller than what I use now (`compare`), where does my memory
// go (`top`). Hosted Swift (Foundation, swift-argument-parser); it starts
// programs with the library preloaded and reads what the library reports
// (statistics files, the live page). It is never linked into the library.
//
// Exit statuses: the program's own (`run`), 64 for bad arguments (usage is
// printed), 127 when the program cannot be started, 1 for any other failure
// (no library found, no live page, outputs that differ in `compare`).

import ArgumentParser
import Foundation

@main
struct SwiftMallocCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "swiftmalloc",
    abstract: "Run, compare and watch programs on the swiftmalloc allocator.",
    discussion: """
      swiftmalloc run -- PROGRAM ARGS...       run PROGRAM on swiftmalloc, print its heap statistics
      swiftmalloc compare -- PROGRAM ARGS...   time and measure PROGRAM under each installed allocator
      swiftmalloc top PID                      watch the heap of a process started with SWIFTMALLOC_LIVE=1

      The library is looked for beside this executable, in the install prefix
      (../lib) or given with --library PATH.
      """,
    version: CLIVersion.text,
    subcommands: [RunCommand.self, CompareCommand.self, TopCommand.self, MeasureCommand.self]
  )
}

/// Options every subcommand that starts programs shares.
struct LibraryOptions: ParsableArguments {
  @Option(name: .long, help: ArgumentHelp("The libswiftmalloc.so to preload.", valueName: "path"))
  var library: String?
}

/// Errors that end the command with a message and a status of their own.
struct CLIError: Error, CustomStringConvertible {
  var message: String
  var status: Int32
  init(_ message: String, status: Int32 = 1) {
    self.message = message
    self.status = status
  }
  var description: String { message }
}

/// Ends the process with `error`'s message on stderr and its status (not
/// ArgumentParser's, which would print usage for any error).
func exitWith(_ error: CLIError) -> Never {
  FileHandle.standardError.write(Data("swiftmalloc: \(error.message)\n".utf8))
  Foundation.exit(error.status)
}

func warn(_ text: String) {
  FileHandle.standardError.write(Data("swiftmalloc: \(text)\n".utf8))
}

enum CLIVersion {
  /// The tool's version: the library's (swiftmalloc.h), filled in by the
  /// Makefile at build time when it can be (Version.generated.swift).
  static var text: String { generatedVersion }
}
