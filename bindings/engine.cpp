// Implementation of lamina::BatchEngine (see engine.h for the why).
#include "engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

namespace lamina {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

BatchEngine::BatchEngine(const llama_model* model, const EngineConfig& cfg) : cfg_(cfg) {
    if (model == nullptr) {
        throw std::invalid_argument("BatchEngine needs a loaded model (got a null llama_model pointer)");
    }
    const int64_t max_seq = static_cast<int64_t>(llama_max_parallel_sequences()) - 1;
    if (cfg_.n_seq_max < 1 || cfg_.n_seq_max > max_seq) {
        throw std::invalid_argument("n_seq_max must be between 1 and " + str(max_seq) + ", got " +
                                    str(cfg_.n_seq_max));
    }
    if (cfg_.n_ctx_per_seq < 8) {
        throw std::invalid_argument("n_ctx_per_seq must be at least 8 tokens, got " +
                                    str(cfg_.n_ctx_per_seq));
    }
    if (cfg_.n_batch < 1) {
        throw std::invalid_argument("n_batch must be at least 1, got " + str(cfg_.n_batch));
    }
    if (cfg_.flash_attn < -1 || cfg_.flash_attn > 1) {
        throw std::invalid_argument("flash_attn must be -1 (auto), 0 (off) or 1 (on)");
    }
    if (cfg_.n_threads <= 0) {
        cfg_.n_threads = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
    }
    // Prompts are evaluated in chunks of the sequential context's n_batch (see
    // step()); the batch itself must also hold one row per generating sequence.
    n_chunk_ = cfg_.n_batch;
    cfg_.n_batch = cfg_.exact_decode ? std::max(cfg_.n_batch, cfg_.n_seq_max)
                                     : cfg_.n_batch + cfg_.n_seq_max;

    model_ = model;
    vocab_ = llama_model_get_vocab(model);
    n_vocab_ = llama_vocab_n_tokens(vocab_);
    prefix_seq_ = cfg_.n_seq_max;

    // Room for every slot at full length plus the prefix holder: shared cells
    // are stored once, so this never runs out while requests fit n_ctx_per_seq.
    const int64_t total = static_cast<int64_t>(cfg_.n_ctx_per_seq) * (cfg_.n_seq_max + 1);
    if (total > (int64_t{1} << 30)) {
        throw std::invalid_argument("n_seq_max * n_ctx_per_seq is too large");
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(total);
    cp.n_batch = static_cast<uint32_t>(cfg_.n_batch);
    cp.n_ubatch = static_cast<uint32_t>(cfg_.n_batch);
    cp.n_seq_max = static_cast<uint32_t>(cfg_.n_seq_max + 1);
    cp.n_threads = cfg_.n_threads;
    cp.n_threads_batch = cfg_.n_threads;
    cp.kv_unified = cfg_.kv_unified;
    cp.flash_attn_type = static_cast<llama_flash_attn_type>(cfg_.flash_attn);
    cp.type_k = static_cast<ggml_type>(cfg_.type_k);
    cp.type_v = static_cast<ggml_type>(cfg_.type_v);
    cp.no_perf = true;
    cp.embeddings = false;

    ctx_ = llama_init_from_model(const_cast<llama_model*>(model), cp);
    if (ctx_ == nullptr) {
        throw std::runtime_error("llama.cpp could not create a batch context of " + str(total) +
                                 " tokens (" + str(cfg_.n_seq_max) + " sequences x " +
                                 str(cfg_.n_ctx_per_seq) +
                                 "); lower n_seq_max or n_ctx_per_seq");
    }
    n_ctx_total_ = llama_n_ctx(ctx_);
    mem_ = llama_get_memory(ctx_);
    batch_ = llama_batch_init(cfg_.n_batch, 0, 1);
    slots_.assign(cfg_.n_seq_max, 0);
    kept_.assign(cfg_.n_seq_max, {});
    kept_rows_.assign(cfg_.n_seq_max, {});
    kept_at_.assign(cfg_.n_seq_max, 0);
    pool_ = std::make_unique<WorkerPool>(std::min(cfg_.n_threads, cfg_.n_seq_max));
    scratch_.resize(static_cast<size_t>(pool_->size()));
    hints_ = std::make_unique<GrammarHints>(n_vocab_);
}

BatchEngine::~BatchEngine() { close(); }

void BatchEngine::close() {
    std::lock_guard<std::mutex> lock(mu_);
    if (ctx_ == nullptr) return;
    requests_.clear();
    queue_.clear();
    llama_batch_free(batch_);
    batch_ = llama_batch{};
    llama_free(ctx_);
    ctx_ = nullptr;
    mem_ = nullptr;
    pool_.reset();
    scratch_.clear();
}

void BatchEngine::check_open() const {
    if (ctx_ == nullptr) throw std::runtime_error("this BatchEngine was closed");
}

int64_t BatchEngine::submit(const std::vector<llama_token>& prompt, const SamplingConfig& sc,
                            const std::optional<std::string>& grammar) {
    if (prompt.empty()) throw std::invalid_argument("the prompt has no tokens");
    if (static_cast<int64_t>(prompt.size()) >= cfg_.n_ctx_per_seq) {
        throw std::invalid_argument("the prompt has " + str(prompt.size()) +
                                    " tokens but each sequence holds " +
                                    str(cfg_.n_ctx_per_seq) +
                                    " including the answer; shorten it or raise n_ctx_per_seq");
    }
    for (llama_token t : prompt) {
        if (t < 0 || t >= n_vocab_) {
            throw std::invalid_argument("token id " + str(t) + " is outside the vocabulary (0.." +
                                        str(n_vocab_ - 1) + ")");
        }
    }
    if (!(sc.repeat_penalty > 0.0f) || !(sc.top_p > 0.0f) || !(sc.min_p >= 0.0f)) {
        throw std::invalid_argument("repeat_penalty and top_p must be > 0 and min_p >= 0");
    }
    if (sc.penalty_last_n < -1) throw std::invalid_argument("penalty_last_n must be >= -1");
    if (!std::isfinite(sc.presence_penalty) || !std::isfinite(sc.frequency_penalty)) {
        throw std::invalid_argument("presence_penalty and frequency_penalty must be finite");
    }

    std::lock_guard<std::mutex> lock(mu_);
    check_open();
    auto r = std::make_unique<Request>();
    r->prompt = prompt;
    r->sc = sc;
    // A bad grammar throws here, before anything is queued.
    r->sampler = std::make_unique<RequestSampler>(vocab_, sc, grammar);
    r->id = next_id_++;
    const int64_t id = r->id;
    requests_.emplace(id, std::move(r));
    queue_.push_back(id);
    return id;
}

void BatchEngine::set_adapters(const std::vector<uintptr_t>& adapters,
                               const std::vector<float>& scales) {
    if (adapters.size() != scales.size()) {
        throw std::invalid_argument("set_adapters needs one scale per adapter");
    }
    std::vector<llama_adapter_lora*> ptrs;
    for (uintptr_t a : adapters) {
        if (a == 0) throw std::invalid_argument("null LoRA adapter pointer");
        ptrs.push_back(reinterpret_cast<llama_adapter_lora*>(a));
    }
    std::vector<float> sc(scales);
    std::lock_guard<std::mutex> lock(mu_);
    check_open();
    if (!requests_.empty()) {
        throw std::runtime_error("LoRA adapters can only change while the engine is idle");
    }
    if (llama_set_adapters_lora(ctx_, ptrs.data(), ptrs.size(), sc.data()) != 0) {
        throw std::runtime_error("llama.cpp refused to apply the LoRA adapters to the batch context");
    }
    // Cached prefix and kept cells were computed without these adapters.
    llama_memory_seq_rm(mem_, prefix_seq_, -1, -1);
    prefix_.clear();
    prefix_rows_.clear();
    forget_kept();
}

void BatchEngine::forget_kept() {
    for (int32_t s = 0; s < cfg_.n_seq_max; ++s) {
        if (slots_[s] != 0) continue;
        llama_memory_seq_rm(mem_, s, -1, -1);
        kept_[s].clear();
        kept_rows_[s].clear();
    }
}

int32_t BatchEngine::set_prefix(const std::vector<llama_token>& prefix) {
    if (static_cast<int64_t>(prefix.size()) > cfg_.n_ctx_per_seq) {
        throw std::invalid_argument("the shared prefix has " + str(prefix.size()) +
                                    " tokens but each sequence holds at most " +
                                    str(cfg_.n_ctx_per_seq));
    }
    for (llama_token t : prefix) {
        if (t < 0 || t >= n_vocab_) {
            throw std::invalid_argument("token id " + str(t) + " is outside the vocabulary");
        }
    }
    // The holder's last chunk must be in the class of a full chunk (or empty)
    // for its rows to be in the class a plain evaluation gives them (see
    // shareable()).
    int64_t keep = static_cast<int64_t>(prefix.size());
    const int32_t tail = static_cast<int32_t>(keep % n_chunk_);
    if (cfg_.exact_decode && kernel_class(tail) < kernel_class(n_chunk_)) keep -= tail;
    const std::vector<llama_token> whole(prefix.begin(), prefix.begin() + keep);
    std::lock_guard<std::mutex> lock(mu_);
    check_open();
    if (whole == prefix_) return 0;
    // Running sequences keep their own tags on the old cells; only the
    // holder's tags go.
    llama_memory_seq_rm(mem_, prefix_seq_, -1, -1);
    prefix_.clear();
    prefix_rows_.clear();
    // A free slot that kept a prompt starting with it (the request before) has
    // these cells already: copy them when each was made in the kernel class this
    // evaluation would make it in.
    const int32_t n_whole = static_cast<int32_t>(whole.size());
    for (int32_t s = 0; s < cfg_.n_seq_max && n_whole > 0; ++s) {
        if (slots_[s] != 0 || static_cast<int32_t>(kept_[s].size()) < n_whole ||
            !std::equal(whole.begin(), whole.end(), kept_[s].begin())) {
            continue;
        }
        if (cells_in_class(kept_rows_[s], n_whole, n_whole) < n_whole) continue;
        llama_memory_seq_cp(mem_, s, prefix_seq_, -1, -1);  // across streams: whole stream
        llama_memory_seq_rm(mem_, prefix_seq_, n_whole, -1);
        prefix_ = whole;
        prefix_rows_.assign(kept_rows_[s].begin(), kept_rows_[s].begin() + n_whole);
        return 0;
    }
    int32_t done = 0;
    const int32_t n = static_cast<int32_t>(whole.size());
    while (done < n) {
        const int32_t k = std::min(n_chunk_, n - done);
        prefix_rows_.insert(prefix_rows_.end(), k, k);
        batch_.n_tokens = 0;
        for (int32_t i = 0; i < k; ++i) add_token(whole[done + i], done + i, prefix_seq_, false);
        const int32_t rc = llama_decode(ctx_, batch_);
        stats_.decode_calls++;
        if (rc != 0) {
            llama_memory_seq_rm(mem_, prefix_seq_, -1, -1);
            throw std::runtime_error("llama_decode failed (code " + str(rc) +
                                     ") while evaluating the shared prefix");
        }
        done += k;
    }
    prefix_ = whole;
    stats_.prompt_evaluated += n;
    stats_.prefix_evaluated += n;
    return n;
}

std::string BatchEngine::token_bytes(llama_token tok) {
    char buf[256];
    int32_t n = llama_token_to_piece(vocab_, tok, buf, sizeof(buf), 0, false);
    if (n >= 0) return std::string(buf, static_cast<size_t>(n));
    std::string big(static_cast<size_t>(-n), '\0');  // n < 0: the size it needs
    n = llama_token_to_piece(vocab_, tok, big.data(), static_cast<int32_t>(big.size()), 0, false);
    big.resize(static_cast<size_t>(std::max(n, 0)));
    return big;
}

void BatchEngine::add_token(llama_token tok, llama_pos pos, llama_seq_id seq, bool output) {
    const int32_t i = batch_.n_tokens;
    batch_.token[i] = tok;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = seq;
    batch_.logits[i] = output ? 1 : 0;
    batch_.n_tokens = i + 1;
}

int32_t BatchEngine::cells_in_class(const std::vector<int32_t>& rows, int32_t m,
                                    int32_t n) const {
    int32_t q = 0;
    while (q < m) {
        const int32_t c0 = q - q % n_chunk_;
        if (kernel_class(rows[q]) != kernel_class(std::min(c0 + n_chunk_, n) - c0)) break;
        ++q;
    }
    return q;
}

int32_t BatchEngine::reusable(int32_t slot, const std::vector<llama_token>& prompt) const {
    const std::vector<llama_token>& kept = kept_[slot];
    const std::vector<int32_t>& rows = kept_rows_[slot];
    const int32_t n = static_cast<int32_t>(prompt.size());
    int32_t m = 0;
    const int32_t limit = std::min<int32_t>(static_cast<int32_t>(kept.size()), n - 1);
    while (m < limit && kept[m] == prompt[m]) ++m;
    if (!cfg_.exact_decode) return m;
    // Cells made in another kernel class than a plain evaluation gives them end it.
    int32_t q = cells_in_class(rows, m, n);
    // The rest of the cut chunk is evaluated in a call of its own: same class.
    const int32_t c0 = q - q % n_chunk_;
    const int32_t c1 = std::min(c0 + n_chunk_, n);
    const int32_t whole = kernel_class(c1 - c0);
    while (q > c0 && kernel_class(c1 - q) != whole) --q;
    return q;
}

int32_t BatchEngine::pick_slot(const std::vector<llama_token>& prompt, int32_t& reuse_out) const {
    int32_t best = -1, best_reuse = -1;
    int64_t best_at = 0;
    for (int32_t s = 0; s < cfg_.n_seq_max; ++s) {
        if (slots_[s] != 0) continue;
        const int32_t reuse = reusable(s, prompt);
        if (reuse > best_reuse || (reuse == best_reuse && kept_at_[s] < best_at)) {
            best = s;
            best_reuse = reuse;
            best_at = kept_at_[s];
        }
    }
    reuse_out = std::max(0, best_reuse);
    return best;
}

void BatchEngine::admit(Request& r, int32_t slot, int32_t own) {
    r.slot = slot;
    r.state = State::Prefill;
    slots_[slot] = r.id;
    kept_[slot].clear();
    int32_t shared = 0;
    if (!prefix_.empty()) {
        const size_t n = std::min(prefix_.size(), r.prompt.size());
        while (static_cast<size_t>(shared) < n && prefix_[shared] == r.prompt[shared]) ++shared;
        // The last prompt token is always evaluated: its logits start generation.
        shared = std::min<int32_t>(shared, static_cast<int32_t>(r.prompt.size()) - 1);
        shared = shareable(shared, static_cast<int32_t>(r.prompt.size()));
    }
    if (own > 0 && own >= shared) {
        // This slot still holds the start of this prompt (a chat's earlier turn).
        llama_memory_seq_rm(mem_, slot, own, -1);
        kept_rows_[slot].resize(own);
        r.rows = std::move(kept_rows_[slot]);
        stats_.prompt_shared += own;
        r.n_past = own;
        r.n_fed = own;
        return;
    }
    llama_memory_seq_rm(mem_, slot, -1, -1);
    kept_rows_[slot].clear();
    r.rows.assign(prefix_rows_.begin(), prefix_rows_.begin() + std::max(0, shared));
    if (shared > 0) {
        if (cfg_.kv_unified) {
            llama_memory_seq_cp(mem_, prefix_seq_, slot, 0, shared);
        } else {
            // Across streams llama.cpp copies only whole sequences: copy the
            // holder, then keep the part this prompt shares.
            llama_memory_seq_cp(mem_, prefix_seq_, slot, -1, -1);
            llama_memory_seq_rm(mem_, slot, shared, -1);
        }
        stats_.prompt_shared += shared;
    }
    r.n_past = shared;
    r.n_fed = shared;
}

int32_t BatchEngine::kernel_class(int32_t rows) const {
    // Attention: a sequence with two or more rows in a call has its f16/f32 KQ
    // and KQV products computed by tinyBLAS, one row by the dot product, whatever
    // the weights (benchmarks/speculate.py measured it): a switch at 2 for every model.
    int32_t c = rows >= 2 ? 1 : 0;
    for (int32_t t : cfg_.kernel_rows) c += rows >= t ? 1 : 0;
    return c;
}

int32_t BatchEngine::shareable(int32_t p, int32_t n) const {
    // A plain loop evaluates chunk [c0, c1) in one call, in the kernel class of
    // its row count. Sharing the prefix up to p splits that chunk into [c0, p)
    // (evaluated in the holder) and [p, c1): both parts must keep the class of
    // the whole chunk, so p moves back until they do (to c0 at worst).
    if (!cfg_.exact_decode) return p;  // --fast-batch: speed chosen over exactness
    const int32_t c0 = p - p % n_chunk_;
    const int32_t c1 = std::min(c0 + n_chunk_, n);
    const int32_t whole = kernel_class(c1 - c0);
    for (int32_t q = p; q > c0; --q) {
        if (kernel_class(q - c0) == whole && kernel_class(c1 - q) == whole) return q;
    }
    return c0;
}

void BatchEngine::finish(int64_t id, const std::string& reason, bool report) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return;
    Request& r = *it->second;
    if (r.state == State::Queued) {
        queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
    } else if (r.slot >= 0) {
        // Keep the prompt's cells for a request that starts the same way (the next
        // turn of this chat); the answer's cells were made one row per call, as no
        // plain evaluation of a prompt makes them, so they go.
        const int32_t keep = static_cast<int32_t>(r.rows.size());
        llama_memory_seq_rm(mem_, r.slot, keep, -1);
        kept_[r.slot].assign(r.prompt.begin(), r.prompt.begin() + keep);
        kept_rows_[r.slot] = std::move(r.rows);
        kept_at_[r.slot] = ++kept_clock_;
        slots_[r.slot] = 0;
    }
    if (report) pending_.push_back(Event{id, -1, true, reason});
    requests_.erase(it);
    stats_.requests_finished++;
}

bool BatchEngine::cancel(int64_t id, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    check_open();
    if (requests_.find(id) == requests_.end()) return false;
    finish(id, reason.empty() ? std::string("cancelled") : reason, true);
    return true;
}

std::vector<Event> BatchEngine::step() {
    std::lock_guard<std::mutex> lock(mu_);
    check_open();
    std::vector<Event> events;
    events.swap(pending_);

    while (!queue_.empty()) {
        Request& next = *requests_.at(queue_.front());
        int32_t own = 0;
        const int32_t s = pick_slot(next.prompt, own);
        if (s < 0) break;
        queue_.pop_front();
        admit(next, s, own);
    }

    // Generating sequences decode one token each, in slot order: llama.cpp
    // splits a multi-stream batch into ubatches of consecutive sequence ids,
    // so slot order keeps them in as few ubatches (weight passes) as possible.
    // Never more than one token of a sequence per call (no grammar
    // fast-forward runs, no speculative drafts): with two or more rows of one
    // sequence its f16 attention products go through llamafile's tinyBLAS
    // instead of ggml's dot product, which rounds differently, so the answer
    // would leave the one-token loop's (benchmarks/speculate.py measures it).
    std::vector<Request*> generating;
    std::vector<Request*> prefilling;  // in submission order (ids grow)
    for (auto& kv : requests_) {
        Request* r = kv.second.get();
        if (r->state == State::Generating) generating.push_back(r);
        if (r->state == State::Prefill) prefilling.push_back(r);
    }
    std::sort(generating.begin(), generating.end(),
              [](const Request* a, const Request* b) { return a->slot < b->slot; });

    // A plain loop decodes one token per call, which ggml computes with its
    // row-by-row dot product; a call of min(kernel_rows) rows or more would
    // take another kernel (tinyBLAS for F16 weights, the tiled matmul for
    // K-quants), which rounds differently. So generating rows go in calls of
    // fewer rows than that (exact_decode), or all in one call.
    if (!cfg_.exact_decode) return step_packed(generating, prefilling, events);
    // No weight switches (Q4_0, Q8_0...): every sequence's row in one call.
    int32_t first_switch = std::numeric_limits<int32_t>::max();
    for (int32_t t : cfg_.kernel_rows) first_switch = std::min(first_switch, t);
    const size_t group = cfg_.kernel_rows.empty()
                             ? std::max<size_t>(1, generating.size())
                             : static_cast<size_t>(std::max(1, first_switch - 1));
    for (size_t g0 = 0; g0 < generating.size(); g0 += group) {
        std::vector<Request*> part(generating.begin() + g0,
                                   generating.begin() + std::min(generating.size(), g0 + group));
        batch_.n_tokens = 0;
        for (Request* r : part) {
            r->batch_idx = batch_.n_tokens;
            add_token(r->last, r->n_past, r->slot, true);
            r->n_past++;
        }
        decode_and_sample(part, 0, events);
    }

    // Prompts are evaluated as a plain llama.cpp loop evaluates them: chunks of
    // n_chunk tokens from position 0, each chunk alone in its llama_decode.
    // Packing a chunk with other sequences' tokens would let llama.cpp split
    // it into smaller ubatches, and how a prompt is cut changes its logits in
    // the last bits (the tokens of a document would then depend on its batch
    // companions). Up to n_chunk prompt tokens per step (at least one chunk),
    // so a long prompt does not hold up the running streams for long.
    int32_t budget = n_chunk_;
    for (Request* r : prefilling) {
        if (budget <= 0) break;
        const int32_t n = static_cast<int32_t>(r->prompt.size());
        const int32_t k = std::min(n_chunk_ - r->n_fed % n_chunk_, n - r->n_fed);
        batch_.n_tokens = 0;
        r->batch_idx = -1;
        for (int32_t i = 0; i < k; ++i) {
            const bool last = (r->n_fed + i + 1 == n);
            if (last) r->batch_idx = batch_.n_tokens;
            add_token(r->prompt[r->n_fed + i], r->n_past + i, r->slot, last);
        }
        r->n_fed += k;
        r->n_past += k;
        r->rows.insert(r->rows.end(), k, k);
        budget -= k;
        std::vector<Request*> one{r};
        decode_and_sample(one, k, events);
    }
    return events;
}

std::vector<Event> BatchEngine::step_packed(std::vector<Request*>& generating,
                                            std::vector<Request*>& prefilling,
                                            std::vector<Event>& events) {
    // One llama_decode for everything: the generating rows, then whole prompt
    // chunks while they fit. llama.cpp may cut the chunks into smaller ubatches
    // and computes large batches with its fastest kernels, which changes no
    // row's result when the model has no tiled-kernel weights, and can for a
    // K-quant model (the caller chose speed).
    std::vector<Request*> active(generating);
    batch_.n_tokens = 0;
    for (Request* r : generating) {
        r->batch_idx = batch_.n_tokens;
        add_token(r->last, r->n_past, r->slot, true);
        r->n_past++;
    }
    int32_t n_prompt = 0;
    for (Request* r : prefilling) {
        const int32_t n = static_cast<int32_t>(r->prompt.size());
        const int32_t k = std::min(n_chunk_ - r->n_fed % n_chunk_, n - r->n_fed);
        if (batch_.n_tokens + k > cfg_.n_batch && batch_.n_tokens > 0) break;
        r->batch_idx = -1;
        for (int32_t i = 0; i < k; ++i) {
            const bool last = (r->n_fed + i + 1 == n);
            if (last) r->batch_idx = batch_.n_tokens;
            add_token(r->prompt[r->n_fed + i], r->n_past + i, r->slot, last);
        }
        r->n_fed += k;
        r->n_past += k;
        r->rows.insert(r->rows.end(), k, k);  // (packed calls are not checked for reuse)
        n_prompt += k;
        active.push_back(r);
    }
    if (!active.empty()) decode_and_sample(active, n_prompt, events);
    return events;
}

void BatchEngine::decode_and_sample(std::vector<Request*>& active, int32_t n_prompt,
                                    std::vector<Event>& events) {
    const auto t_decode = std::chrono::steady_clock::now();
    const int32_t rc = llama_decode(ctx_, batch_);
    stats_.decode_seconds += seconds_since(t_decode);
    stats_.decode_calls++;
    if (rc != 0) {
        // Fail the requests of this batch rather than leave them half-done.
        // Their final events are reported by the next step(), after the ones
        // this step had already collected.
        pending_.swap(events);
        for (Request* r : active) {
            r->rows.clear();  // cells of a failed call are not kept for reuse
            finish(r->id, "error", true);
        }
        throw std::runtime_error("llama_decode failed with code " + str(rc) + " on a batch of " +
                                 str(batch_.n_tokens) + " tokens; the requests in it were ended");
    }
    stats_.prompt_evaluated += n_prompt;

    const auto t_sample = std::chrono::steady_clock::now();
    // Sequences sample in parallel (independent samplers); the logits rows are
    // fetched first, in this thread, because llama_get_logits_ith may reorder
    // the outputs on its first call after a decode.
    std::vector<Request*> sampling;
    std::vector<const float*> rows;
    for (Request* r : active) {
        if (r->batch_idx < 0) continue;
        sampling.push_back(r);
        rows.push_back(llama_get_logits_ith(ctx_, r->batch_idx));
    }
    std::vector<llama_token> picked(sampling.size(), -1);
    std::vector<char> failed(sampling.size(), 0);
    std::vector<int64_t> checked(sampling.size(), 0);  // > 0: the grammar fallback ran
    pool_->run(sampling.size(), [&](size_t i, int worker) {
        try {
            if (rows[i] == nullptr) throw std::runtime_error("no logits for a sequence");
            picked[i] = sampling[i]->sampler->sample(rows[i], scratch_[worker], hints_.get(),
                                                     checked[i]);
        } catch (const std::exception&) {
            failed[i] = 1;
        }
    });
    for (size_t i = 0; i < sampling.size(); ++i) {
        if (checked[i] == 0 || failed[i]) continue;
        stats_.grammar_fallbacks++;
        stats_.grammar_checked += checked[i];
        hints_->remember(picked[i]);
    }

    std::vector<int64_t> done;
    for (size_t i = 0; i < sampling.size(); ++i) {
        Request* r = sampling[i];
        if (failed[i]) {
            events.push_back(Event{r->id, -1, true, "error"});
            done.push_back(r->id);
            continue;
        }
        const llama_token tok = picked[i];
        r->state = State::Generating;
        if (llama_vocab_is_eog(vocab_, tok)) {
            events.push_back(Event{r->id, -1, true, "stop"});
            done.push_back(r->id);
            continue;
        }
        r->n_generated++;
        stats_.generated++;
        r->last = tok;
        const bool by_max = r->sc.max_tokens > 0 && r->n_generated >= r->sc.max_tokens;
        // Like the sequential loop: no token is sampled once the context is full.
        const bool by_ctx = r->n_past + 1 >= cfg_.n_ctx_per_seq;
        if (by_max || by_ctx) {
            events.push_back(Event{r->id, tok, true, "length", r->text.push(token_bytes(tok))});
            done.push_back(r->id);
        } else {
            events.push_back(Event{r->id, tok, false, "", r->text.push(token_bytes(tok))});
        }
    }
    stats_.sample_seconds += seconds_since(t_sample);
    for (int64_t id : done) finish(id, "", false);
}

bool BatchEngine::has_work() {
    std::lock_guard<std::mutex> lock(mu_);
    return !requests_.empty() || !pending_.empty();
}

int32_t BatchEngine::n_active() {
    std::lock_guard<std::mutex> lock(mu_);
    int32_t n = 0;
    for (int64_t id : slots_) n += id != 0 ? 1 : 0;
    return n;
}

int32_t BatchEngine::n_queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int32_t>(queue_.size());
}

EngineStats BatchEngine::stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

std::vector<llama_token> BatchEngine::prefix() {
    std::lock_guard<std::mutex> lock(mu_);
    return prefix_;
}

}  // namespace lamina
