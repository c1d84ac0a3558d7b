import Foundation

/// What a command must undo when SIGINT or SIGTERM ends it early: scratch directories to
/// remove and child processes to stop (a benchmark's server, its copy of a run). `defer` does
/// not run when a signal ends the process; these do, from a dispatch source, and then the
/// process ends by the same signal.
public final class InterruptCleanup: @unchecked Sendable {
    public static let shared = InterruptCleanup()

    private let lock = NSLock()
    private var paths: [Int: URL] = [:]
    private var processes: [Int: Process] = [:]
    private var next = 0
    private var sources: [DispatchSourceSignal] = []

    /// Removes `url` if a signal ends the process before `release` is called with the result.
    public func remove(_ url: URL) -> Int {
        register { paths[$0] = url }
    }

    /// Stops `process` (SIGTERM) if a signal ends this process first.
    public func stop(_ process: Process) -> Int {
        register { processes[$0] = process }
    }

    /// Forgets a registration (the work ended normally and cleaned up itself).
    public func release(_ token: Int) {
        lock.withLock { paths[token] = nil; processes[token] = nil }
    }

    private func register(_ add: (Int) -> Void) -> Int {
        lock.withLock {
            if sources.isEmpty { install() }
            next += 1
            add(next)
            return next
        }
    }

    /// The caller holds `lock`.
    private func install() {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in [SIGINT, SIGTERM] {
            sigaddset(&blocked, signal)
            Foundation.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler { [self] in
                let (children, directories) = lock.withLock { (Array(processes.values), Array(paths.values)) }
                // Directories first, while the work that writes into them is still blocked on
                // its children: once they die, that work would go on beside the removal.
                for directory in directories { try? FileManager.default.removeItem(at: directory) }
                for child in children where child.isRunning { child.terminate() }
                Foundation.signal(signal, SIG_DFL)
                kill(getpid(), signal)
            }
            source.resume()
            sources.append(source)
        }
        pthread_sigmask(SIG_UNBLOCK, &blocked, nil)
    }
}
