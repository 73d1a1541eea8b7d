// Implementation of lamina::WorkerPool (see worker_pool.h for the why).
#include "worker_pool.h"

#ifdef LAMINA_USE_OPENMP
#include <omp.h>
#endif

namespace lamina {

WorkerPool::WorkerPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
#ifndef LAMINA_USE_OPENMP
    for (int w = 1; w < n_threads_; ++w) threads_.emplace_back([this, w] { work(w); });
#endif
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    start_.notify_all();
    for (auto& t : threads_) t.join();
}

void WorkerPool::run(size_t n, const std::function<void(size_t, int)>& body) {
#ifdef LAMINA_USE_OPENMP
    // The same OpenMP runtime as ggml's CPU backend: its worker threads, still
    // spinning after llama_decode, take these iterations instead of competing
    // for the cores with threads of our own.
    if (n_threads_ > 1 && n > 1) {
        const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for num_threads(n_threads_) schedule(dynamic, 1)
        for (int64_t i = 0; i < count; ++i) body(static_cast<size_t>(i), omp_get_thread_num());
        return;
    }
#endif
    if (threads_.empty() || n < 2) {
        for (size_t i = 0; i < n; ++i) body(i, 0);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        body_ = &body;
        n_ = n;
        next_ = 0;
        busy_ = static_cast<int>(threads_.size());
        ++generation_;
    }
    start_.notify_all();
    drain(0);
    std::unique_lock<std::mutex> lock(mu_);
    finished_.wait(lock, [this] { return busy_ == 0; });
    body_ = nullptr;
}

void WorkerPool::drain(int worker) {
    for (;;) {
        size_t i;
        const std::function<void(size_t, int)>* body;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (next_ >= n_) return;
            i = next_++;
            body = body_;
        }
        (*body)(i, worker);
    }
}

void WorkerPool::work(int worker) {
    size_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            start_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
        }
        drain(worker);
        {
            std::lock_guard<std::mutex> lock(mu_);
            --busy_;
        }
        finished_.notify_one();
    }
}

}  // namespace lamina
