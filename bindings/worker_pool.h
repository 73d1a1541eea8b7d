// A few threads that run one loop body in parallel, for the engine's sampling.
//
// Why: llama_decode spreads over every core, but sampling the sequences of a
// step (a grammar check can cost milliseconds) used to run on one thread while
// the other cores idled. Sequences have independent samplers, so the engine
// samples them in parallel on this pool. Built with OpenMP (as ggml's CPU
// backend usually is) it is an OpenMP loop on ggml's own worker threads;
// otherwise it starts n - 1 threads and the calling thread takes part.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lamina {

class WorkerPool {
public:
    explicit WorkerPool(int n_threads);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    int size() const { return n_threads_; }

    // Call body(i, worker) for every i in [0, n), spread over the threads;
    // worker is in [0, size()). Returns when all calls have returned. body
    // must not throw.
    void run(size_t n, const std::function<void(size_t, int)>& body);

private:
    void work(int worker);
    void drain(int worker);

    int n_threads_ = 1;
    std::vector<std::thread> threads_;  // without OpenMP only
    std::mutex mu_;
    std::condition_variable start_;
    std::condition_variable finished_;
    const std::function<void(size_t, int)>* body_ = nullptr;
    size_t n_ = 0;
    size_t next_ = 0;      // next index to hand out (under mu_)
    size_t generation_ = 0;
    int busy_ = 0;         // workers still inside the current job
    bool stop_ = false;
};

}  // namespace lamina
