#pragma once
// Training checkpoints: one file that lets a run continue exactly where it stopped. It holds the
// model's parameters, the optimiser's and the scheduler's state, the random generators' state
// (the global one, which default Dropout layers draw from, and any named one), the DataLoader's
// epoch (its shuffle order) and user metadata. The file is a plain safetensors file, written
// atomically as io::save writes:
//
//   tensors    "model.<parameter name>" in T's dtype; "optimizer.<parameter name>.<buffer>" and
//              "scheduler.<...>" in F32 when every value is a float, else F64
//   metadata   "xgrad.format" = "checkpoint-1", "xgrad.crc32" (of the data section, 8 hex digits),
//              "xgrad.epoch", "xgrad.step"; "optimizer.type" and "optimizer.<number>", the same
//              for "scheduler."; "rng.default" and "rng.<name>" (a generator's get_state());
//              "loader.epoch", "loader.seed"; "user.<key>" for the metadata map. Numbers are
//              decimal text that reads back exactly.
//
//   io::Checkpoint<float> ckpt{.model = &model, .optimizer = &opt, .scheduler = &sched,
//                              .loader = &loader, .epoch = epoch};
//   io::save_checkpoint(ckpt, "run.ckpt.safetensors");
//   ...                                                  // later, in a fresh process:
//   io::load_checkpoint(ckpt, "run.ckpt.safetensors");  // ckpt.epoch is the saved epoch

#include <cstdint>
#include <map>
#include <string>

#include <xgrad/data/dataloader.hpp>
#include <xgrad/nn/module.hpp>
#include <xgrad/optim/lr_scheduler.hpp>
#include <xgrad/optim/optimizer.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad::io {

/// What a checkpoint saves and where a load puts it. Only `model` is required; the pointers are
/// not owned.
template <class T>
struct Checkpoint {
  /// The parameters, by their dotted names.
  nn::Module<T>* model = nullptr;
  /// Its state keyed by the model's parameter names (state_dict with names).
  optim::Optimizer<T>* optimizer = nullptr;
  /// Its state_dict.
  optim::LRScheduler<T>* scheduler = nullptr;
  /// Its epoch and seed: the next epoch's shuffle order.
  data::DataLoader<T>* loader = nullptr;
  /// Generators besides the calling thread's default_generator() (always saved), by name: a
  /// seeded Dropout's generator(), say.
  std::map<std::string, Generator*> generators = {};
  /// Epochs done.
  std::int64_t epoch = 0;
  /// Optimiser steps done.
  std::int64_t step = 0;
  /// Any text (the command line, a run name).
  std::map<std::string, std::string> metadata = {};
};

/// Writes `checkpoint` to `path` atomically (as io::save). Raises ValueError when `model` is
/// null, IoError when the file cannot be written.
template <class T>
void save_checkpoint(const Checkpoint<T>& checkpoint, const std::string& path);

/// Loads a checkpoint into what `checkpoint` points to and sets its epoch, step and metadata;
/// all or nothing. Raises IoError, changing nothing, when the file is damaged (its CRC-32), is no
/// xgrad checkpoint, or does not fit: a parameter missing, extra or of another shape; an
/// optimiser, scheduler, loader or named generator asked for but not saved; another optimiser
/// or scheduler type; a loader with another seed.
template <class T>
void load_checkpoint(Checkpoint<T>& checkpoint, const std::string& path);

}  // namespace xgrad::io
