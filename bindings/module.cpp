// Python bindings of lamina's native engine (`lamina._native`), built with nanobind.
//
// The heavy calls release the GIL so that a server's request threads keep
// running while a driver thread decodes; C++ exceptions become ValueError
// (std::invalid_argument) or RuntimeError (std::runtime_error).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <deque>
#include <mutex>
#include <new>
#include <utility>

#include "engine.h"
#include "sampler.h"
#include "utf8.h"

namespace nb = nanobind;
using namespace nb::literals;
using lamina::BatchEngine;
using lamina::EngineConfig;
using lamina::SamplingConfig;

namespace {

// llama.cpp's log, kept in C++: a Python (ctypes) log callback runs on every
// log line, and a Ctrl-C that lands in it is printed and dropped by ctypes, so
// a batch job would not stop. Only warnings and errors are kept, for messages.
std::mutex log_mu;
std::deque<std::pair<int, std::string>> log_tail;

void keep_log(ggml_log_level level, const char* text, void*) {
    if (level != GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_ERROR) return;
    std::lock_guard<std::mutex> lock(log_mu);
    log_tail.emplace_back(static_cast<int>(level), text ? text : "");
    if (log_tail.size() > 20) log_tail.pop_front();
}

}  // namespace

NB_MODULE(_native, m) {
    m.doc() = "lamina's batched llama.cpp decoding engine (C++).";
    // Engines left alive at interpreter exit are fine; the warning only confuses users.
    nb::set_leak_warnings(false);

    m.def("quiet_logs", []() { llama_log_set(keep_log, nullptr); },
          "Send llama.cpp's log to a small C++ buffer instead of stderr.");
    m.def("log_tail", []() {
              std::lock_guard<std::mutex> lock(log_mu);
              return std::vector<std::pair<int, std::string>>(log_tail.begin(), log_tail.end());
          },
          "The last warning and error lines of llama.cpp's log: (level, text).");
    m.def("clear_log_tail", []() {
              std::lock_guard<std::mutex> lock(log_mu);
              log_tail.clear();
          });
    m.def("llama_system_info", []() { return std::string(llama_print_system_info()); },
          "The llama.cpp build features this module is linked against.");
    m.def("max_parallel_sequences",
          []() { return static_cast<int64_t>(llama_max_parallel_sequences()) - 1; },
          "Largest n_seq_max a BatchEngine accepts (one sequence id holds the shared prefix).");
    m.def("utf8_texts",
          [](const std::vector<nb::bytes>& chunks) {
              lamina::Utf8Stream stream;
              std::vector<std::string> out;
              out.reserve(chunks.size());
              for (const nb::bytes& c : chunks) {
                  out.push_back(stream.push(std::string(c.c_str(), c.size())));
              }
              return out;
          },
          "chunks"_a,
          "The text each chunk of bytes completes, as the engine hands out token pieces "
          "(for tests: equal to Python's incremental UTF-8 decoder with errors='replace').");
    m.def("greedy_choice",
          [](const std::vector<float>& row) {
              return lamina::first_argmax(row.data(), static_cast<int32_t>(row.size()));
          },
          "row"_a, "The greedy sampler's choice on one row of logits (what tests compare "
                   "with llama.cpp's own greedy sampler).");

    nb::class_<SamplingConfig>(m, "SamplingConfig")
        .def(nb::init<>())
        .def_rw("temperature", &SamplingConfig::temperature)
        .def_rw("top_k", &SamplingConfig::top_k)
        .def_rw("top_p", &SamplingConfig::top_p)
        .def_rw("min_p", &SamplingConfig::min_p)
        .def_rw("repeat_penalty", &SamplingConfig::repeat_penalty)
        .def_rw("presence_penalty", &SamplingConfig::presence_penalty)
        .def_rw("frequency_penalty", &SamplingConfig::frequency_penalty)
        .def_rw("penalty_last_n", &SamplingConfig::penalty_last_n)
        .def_rw("max_tokens", &SamplingConfig::max_tokens)
        .def_rw("seed", &SamplingConfig::seed);

    nb::class_<lamina::SequenceSampler>(m, "Sampler")
        .def(
            "__init__",
            [](lamina::SequenceSampler* self, uintptr_t vocab, const SamplingConfig& sc,
               const std::optional<std::string>& grammar) {
                if (vocab == 0) throw std::invalid_argument("null llama_vocab pointer");
                new (self) lamina::SequenceSampler(reinterpret_cast<const llama_vocab*>(vocab),
                                                   sc, grammar);
            },
            "vocab"_a, "config"_a, "grammar"_a = nb::none(),
            "A sampler for one sequence (greedy + grammar without filtering the whole vocabulary).")
        .def(
            "sample",
            [](lamina::SequenceSampler& s, uintptr_t ctx, int32_t idx) {
                if (ctx == 0) throw std::invalid_argument("null llama_context pointer");
                nb::gil_scoped_release release;
                return s.sample(reinterpret_cast<llama_context*>(ctx), idx);
            },
            "ctx"_a, "idx"_a = -1, "Pick and accept the next token from the context's logits.")
        .def_prop_ro("grammar_fallbacks", &lamina::SequenceSampler::grammar_fallbacks)
        .def_prop_ro("grammar_checked", &lamina::SequenceSampler::grammar_checked);

    nb::class_<BatchEngine>(m, "BatchEngine")
        .def(
            "__init__",
            [](BatchEngine* self, uintptr_t model, int32_t n_seq_max, int32_t n_ctx_per_seq,
               int32_t n_threads, int32_t n_batch, int32_t flash_attn, int32_t type_k,
               int32_t type_v, bool kv_unified, bool exact_decode,
               const std::vector<int32_t>& kernel_rows) {
                EngineConfig cfg;
                cfg.n_seq_max = n_seq_max;
                cfg.n_ctx_per_seq = n_ctx_per_seq;
                cfg.n_threads = n_threads;
                cfg.n_batch = n_batch;
                cfg.flash_attn = flash_attn;
                cfg.type_k = type_k;
                cfg.type_v = type_v;
                cfg.kv_unified = kv_unified;
                cfg.exact_decode = exact_decode;
                cfg.kernel_rows = kernel_rows;
                nb::gil_scoped_release release;
                new (self) BatchEngine(reinterpret_cast<const llama_model*>(model), cfg);
            },
            "model"_a, "n_seq_max"_a, "n_ctx_per_seq"_a, "n_threads"_a = 0, "n_batch"_a = 512,
            "flash_attn"_a = 0, "type_k"_a = 1, "type_v"_a = 1, "kv_unified"_a = false,
            "exact_decode"_a = true, "kernel_rows"_a = std::vector<int32_t>{8},
            "Create a context with n_seq_max sequences on the llama_model at address `model`.")
        .def(
            "submit",
            [](BatchEngine& e, const std::vector<int32_t>& prompt, const SamplingConfig& sc,
               const std::optional<std::string>& grammar) {
                nb::gil_scoped_release release;
                return e.submit(prompt, sc, grammar);
            },
            "prompt"_a, "sampling"_a, "grammar"_a = nb::none(),
            "Queue a request (prompt token ids); returns its id.")
        .def(
            "set_prefix",
            [](BatchEngine& e, const std::vector<int32_t>& prefix) {
                nb::gil_scoped_release release;
                return e.set_prefix(prefix);
            },
            "prefix"_a, "Evaluate a shared prompt prefix once; returns tokens evaluated.")
        .def(
            "set_adapters",
            [](BatchEngine& e, const std::vector<uintptr_t>& adapters,
               const std::vector<float>& scales) {
                nb::gil_scoped_release release;
                e.set_adapters(adapters, scales);
            },
            "adapters"_a, "scales"_a,
            "Apply LoRA adapters (llama_adapter_lora pointers) to the batch context.")
        .def(
            "cancel",
            [](BatchEngine& e, int64_t id, const std::string& reason) {
                nb::gil_scoped_release release;
                return e.cancel(id, reason);
            },
            "id"_a, "reason"_a = "cancelled",
            "End a request now and free its slot; False if it already finished.")
        .def(
            "step",
            [](BatchEngine& e) {
                std::vector<lamina::Event> events;
                {
                    nb::gil_scoped_release release;
                    events = e.step();
                }
                std::vector<std::tuple<int64_t, int32_t, bool, std::string, std::string>> out;
                out.reserve(events.size());
                for (auto& ev : events) {
                    out.emplace_back(ev.id, ev.token, ev.done, ev.reason, std::move(ev.piece));
                }
                return out;
            },
            "Run one decode step; returns [(id, token, done, reason, text)] (token -1: "
            "none; text: what the token completes, whole UTF-8 characters).")
        .def(
            "has_work",
            [](BatchEngine& e) {
                nb::gil_scoped_release release;
                return e.has_work();
            })
        .def_prop_ro("n_active",
                     [](BatchEngine& e) {
                         nb::gil_scoped_release release;
                         return e.n_active();
                     })
        .def_prop_ro("n_queued",
                     [](BatchEngine& e) {
                         nb::gil_scoped_release release;
                         return e.n_queued();
                     })
        .def_prop_ro("n_seq_max", [](BatchEngine& e) { return e.config().n_seq_max; })
        .def_prop_ro("n_ctx_per_seq", [](BatchEngine& e) { return e.config().n_ctx_per_seq; })
        .def_prop_ro("n_threads", [](BatchEngine& e) { return e.config().n_threads; })
        .def_prop_ro("n_batch", [](BatchEngine& e) { return e.config().n_batch; })
        .def_prop_ro("n_ctx_total", [](BatchEngine& e) { return e.n_ctx_total(); })
        .def_prop_ro("prefix",
                     [](BatchEngine& e) {
                         std::vector<int32_t> p;
                         {
                             nb::gil_scoped_release release;
                             p = e.prefix();
                         }
                         return p;
                     })
        .def(
            "stats",
            [](BatchEngine& e) {
                lamina::EngineStats s;
                {
                    nb::gil_scoped_release release;
                    s = e.stats();
                }
                nb::dict d;
                d["prompt_evaluated"] = s.prompt_evaluated;
                d["prompt_shared"] = s.prompt_shared;
                d["prefix_evaluated"] = s.prefix_evaluated;
                d["generated"] = s.generated;
                d["decode_calls"] = s.decode_calls;
                d["requests_finished"] = s.requests_finished;
                d["grammar_fallbacks"] = s.grammar_fallbacks;
                d["grammar_checked"] = s.grammar_checked;
                d["decode_seconds"] = s.decode_seconds;
                d["sample_seconds"] = s.sample_seconds;
                return d;
            },
            "Counters since creation (prompt tokens evaluated/shared, tokens generated...).")
        .def(
            "close",
            [](BatchEngine& e) {
                nb::gil_scoped_release release;
                e.close();
            },
            "Free the llama_context now (the model stays loaded).");
}
