// lamina's batched decoding engine: many sequences share one llama_context.
//
// Why: llama-cpp-python decodes one sequence at a time, which leaves most of a
// CPU's matrix throughput idle. Here every step decodes the next token of
// every generating sequence and evaluates chunks of waiting prompts
// (continuous batching): in one llama_decode call, or, for models with
// K-quant weights, in calls that keep each row in the ggml kernel a
// one-sequence loop gives it (exact_decode, see step()), and a common prompt
// prefix (an extraction
// instruction, a system prompt) is evaluated once into a holder sequence and
// shared with every request by copying its KV cells (llama_memory_seq_cp on a
// unified cache only tags the cells; nothing is recomputed or duplicated).
//
// Threading: every public method takes one mutex; the Python bindings release
// the GIL before calling in, so a server thread can submit or cancel while a
// driver thread is inside step().
#pragma once

#include <llama.h>

#include "sampler.h"
#include "utf8.h"
#include "worker_pool.h"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lamina {

struct EngineConfig {
    int32_t n_seq_max = 4;
    int32_t n_ctx_per_seq = 2048;
    int32_t n_threads = 0;  // <= 0: hardware concurrency
    int32_t n_batch = 512;   // prompt chunk size: the sequential context's n_batch
    int32_t flash_attn = 0;  // llama_flash_attn_type: -1 auto, 0 off, 1 on
    int32_t type_k = 1;      // ggml_type of the KV cache (1 = f16)
    int32_t type_v = 1;
    // One KV stream for all sequences (shared prefix cells are only tagged) or
    // one stream per sequence (the prefix is copied once per request). Split
    // streams are the default: with a unified cache every token attends over
    // the cells of all sequences, which costs more than copying a prefix.
    bool kv_unified = false;
    // The row counts at which ggml moves a product with this model's weights
    // to another kernel, which rounds differently: 2 for F16/BF16/F32 weights
    // (llamafile's tinyBLAS takes calls of two rows or more), 8 for K-quants
    // (the tiled matmul). Empty: every call size gives a weight row the same
    // result. (Attention switches at 2 rows of one sequence for every model;
    // kernel_class() adds it.)
    std::vector<int32_t> kernel_rows = {8};
    // Keep every row in the kernel class a one-sequence loop gives it: decode
    // in calls of fewer than min(kernel_rows) rows (all sequences in one call
    // when kernel_rows is empty), each prompt chunk alone, shared prefixes cut
    // where both parts keep their class (answers independent of the batch).
    // false (--fast-batch): generating rows and prompt chunks in one call.
    bool exact_decode = true;
};

// One thing that happened to a request during a step. token < 0 means "no
// token" (the request ended without producing one: end of generation, cancel).
struct Event {
    int64_t id;
    int32_t token;
    bool done;
    std::string reason;  // "" while running; "stop" | "length" | "cancelled" | "error"
    // The text this token completes (valid UTF-8; "" while a character is unfinished).
    std::string piece;
};

struct EngineStats {
    int64_t prompt_evaluated = 0;  // prompt tokens run through llama_decode (prefix included)
    int64_t prompt_shared = 0;     // prompt tokens taken from the shared prefix instead
    int64_t prefix_evaluated = 0;  // of prompt_evaluated: tokens of shared prefixes
    int64_t generated = 0;         // tokens sampled
    int64_t decode_calls = 0;
    int64_t requests_finished = 0;
    int64_t grammar_fallbacks = 0;  // greedy+grammar steps whose argmax the grammar rejected
    int64_t grammar_checked = 0;    // candidates those fallbacks checked (n_vocab each, unpruned)
    double decode_seconds = 0.0;    // wall time inside llama_decode
    double sample_seconds = 0.0;    // wall time sampling (grammar included)
};

class BatchEngine {
public:
    BatchEngine(const llama_model* model, const EngineConfig& cfg);
    ~BatchEngine();
    BatchEngine(const BatchEngine&) = delete;
    BatchEngine& operator=(const BatchEngine&) = delete;

    // Queue a request; returns its id. Throws std::invalid_argument for an
    // empty or too long prompt, an out-of-vocabulary token or a grammar that
    // does not parse.
    int64_t submit(const std::vector<llama_token>& prompt, const SamplingConfig& sc,
                   const std::optional<std::string>& grammar);

    // Evaluate `prefix` once into the holder sequence; later requests whose
    // prompts start with (part of) it reuse those KV cells. Returns the number
    // of tokens evaluated (0 when the prefix is already the current one, or was
    // copied from a free slot's kept prompt).
    int32_t set_prefix(const std::vector<llama_token>& prefix);

    // Apply the same LoRA adapters the sequential context uses (pointers from
    // llama_adapter_lora_init); only while no request is queued or running.
    void set_adapters(const std::vector<uintptr_t>& adapters, const std::vector<float>& scales);

    // End a queued or running request now; its slot is free on return and a
    // final event with `reason` is reported by the next step(). False when the
    // id is unknown or already finished.
    bool cancel(int64_t id, const std::string& reason);

    // Admit queued requests into free slots, run one llama_decode over all
    // active sequences, sample, and report what happened.
    std::vector<Event> step();

    bool has_work();
    int32_t n_active();
    int32_t n_queued();
    EngineStats stats();
    std::vector<llama_token> prefix();
    uint32_t n_ctx_total() const { return n_ctx_total_; }
    const EngineConfig& config() const { return cfg_; }

    // Free the context early (idempotent); later calls raise.
    void close();

private:
    enum class State { Queued, Prefill, Generating };

    struct Request {
        int64_t id = 0;
        std::vector<llama_token> prompt;
        SamplingConfig sc;
        std::unique_ptr<RequestSampler> sampler;
        State state = State::Queued;
        int32_t slot = -1;
        int32_t n_past = 0;     // tokens of this sequence in the KV cache
        int32_t n_fed = 0;      // prompt tokens already in the cache (shared ones included)
        int32_t n_generated = 0;
        llama_token last = -1;  // sampled token still to be fed
        Utf8Stream text;        // the answer's bytes so far, as text
        std::vector<int32_t> rows;  // per prompt cell in the cache: rows of the call that made it
        int32_t batch_idx = -1; // output row in the current batch, -1: none
    };

    void check_open() const;
    // Give `r` the free `slot`, reusing `own` of the cells the slot kept (from
    // pick_slot) or what it can share of the holder's prefix.
    void admit(Request& r, int32_t slot, int32_t own);
    void finish(int64_t id, const std::string& reason, bool report);
    void add_token(llama_token tok, llama_pos pos, llama_seq_id seq, bool output);
    // The token's bytes as Model._piece gives them (no special-token text).
    std::string token_bytes(llama_token tok);
    // How much of a matching prefix of length p a prompt of n tokens may take
    // from the holder without changing any row's kernel class.
    int32_t shareable(int32_t p, int32_t n) const;
    // How many leading tokens of `prompt` a slot's kept cells (an earlier prompt)
    // give without changing any row's kernel class: each kept cell must have been
    // made in a call of the class a from-scratch evaluation of `prompt` puts it in,
    // and the rest of its chunk must keep that class too.
    int32_t reusable(int32_t slot, const std::vector<llama_token>& prompt) const;
    // How many of the first m cells in `rows` (rows of the call that made each)
    // were made in the kernel class a from-scratch evaluation of an n-token
    // prompt makes them in (shared by reusable() and set_prefix()).
    int32_t cells_in_class(const std::vector<int32_t>& rows, int32_t m, int32_t n) const;
    // The free slot a queued prompt should take: the one whose kept cells it
    // reuses most (how many: reuse_out), else the one kept longest ago. -1: none free.
    int32_t pick_slot(const std::vector<llama_token>& prompt, int32_t& reuse_out) const;
    void forget_kept();
    // How many of kernel_rows a call of `rows` rows reaches: rows of calls in
    // the same class get the same kernel.
    int32_t kernel_class(int32_t rows) const;
    // step() without exact_decode: generating rows and prompt chunks in one call.
    std::vector<Event> step_packed(std::vector<Request*>& generating,
                                   std::vector<Request*>& prefilling, std::vector<Event>& events);
    // llama_decode the prepared batch_, then sample every request of `active`
    // that has an output row and record what happened in `events`.
    void decode_and_sample(std::vector<Request*>& active, int32_t n_prompt,
                           std::vector<Event>& events);

    EngineConfig cfg_;
    const llama_model* model_ = nullptr;
    const llama_vocab* vocab_ = nullptr;
    int32_t n_vocab_ = 0;
    llama_context* ctx_ = nullptr;
    llama_memory_t mem_ = nullptr;
    llama_batch batch_{};
    uint32_t n_ctx_total_ = 0;
    int32_t n_chunk_ = 512;  // prompt chunk: the sequential context's n_batch
    llama_seq_id prefix_seq_ = 0;  // the holder sequence id (= n_seq_max)

    std::mutex mu_;
    int64_t next_id_ = 1;
    std::map<int64_t, std::unique_ptr<Request>> requests_;
    std::deque<int64_t> queue_;
    std::vector<int64_t> slots_;  // request id per slot, 0 = free
    // A free slot keeps the prompt cells of the request it last held (a chat's
    // next turn starts with that prompt): their tokens, the rows of the calls that
    // made them, and when they were kept (least recent goes first).
    std::vector<std::vector<llama_token>> kept_;
    std::vector<std::vector<int32_t>> kept_rows_;
    std::vector<int64_t> kept_at_;
    int64_t kept_clock_ = 0;
    std::vector<int32_t> prefix_rows_;  // rows of the call that made each holder cell
    std::vector<llama_token> prefix_;
    std::vector<Event> pending_;
    std::unique_ptr<WorkerPool> pool_;                    // samples sequences in parallel
    std::vector<std::vector<llama_token_data>> scratch_;  // candidate buffer per pool thread
    std::unique_ptr<GrammarHints> hints_;  // shared by the requests' grammar fallbacks
    EngineStats stats_;
};

}  // namespace lamina
