// Training checkpoints over the safetensors writer and reader. A load reads and checks the whole
// file, and stages every piece, before the first thing is changed; the optimiser's and the
// scheduler's own load_state_dict check before they change anything, and the optimiser's old
// state is put back if the scheduler's load fails after it.

#include <xgrad/io/checkpoint.hpp>

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "safetensors_impl.hpp"

namespace xgrad::io {

namespace {

constexpr const char* kFormat = "checkpoint-1";

[[noreturn]] void fail(const char* op, const std::string& path, const std::string& what) {
  throw IoError(std::string(op) + ": " + path + ": " + what);
}

std::string num(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string hex32(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

/// The optimiser's parameter i under the model's name for the same tensor, so that the state fits
/// the model whatever order the optimiser was given its parameters in.
template <class T>
std::vector<std::string> optimizer_names(const nn::Module<T>& model,
                                         const optim::Optimizer<T>& optimizer) {
  const auto named = model.named_parameters();
  std::vector<std::string> names;
  for (std::size_t i = 0; i < optimizer.params().size(); ++i) {
    std::string name = "<unnamed " + std::to_string(i) + ">";
    for (const auto& [n, t] : named) {
      if (t.impl() == optimizer.params()[i].impl()) {
        name = n;
        break;
      }
    }
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace

template <class T>
void save_checkpoint(const Checkpoint<T>& ckpt, const std::string& path) {
  constexpr const char* op = "xgrad::io::save_checkpoint";
  if (!ckpt.model) throw ValueError(std::string(op) + ": the checkpoint has no model");
  std::vector<detail::RawTensor> raw;
  std::map<std::string, std::string> meta;
  meta["xgrad.format"] = kFormat;
  meta["xgrad.epoch"] = std::to_string(ckpt.epoch);
  meta["xgrad.step"] = std::to_string(ckpt.step);

  const auto params = ckpt.model->state_dict();
  for (const auto& [name, t] : params) {
    if (!t.defined()) {
      throw ValueError(std::string(op) + ": parameter '" + name + "' is undefined");
    }
    raw.push_back({"model." + name, std::is_same_v<T, float> ? "F32" : "F64", t.shape(),
                   t.value().data(), t.value().size() * sizeof(T)});
  }

  // State buffers go as F32 when float holds every value exactly (a float model's moments),
  // else as F64: the file is never larger than it must be, and never loses a bit.
  std::deque<std::vector<float>> narrowed;
  const auto add_state = [&](const std::string& prefix, const optim::StateDict& state) {
    meta[prefix + "type"] = state.type;
    for (const auto& [key, v] : state.scalars) meta[prefix + key] = num(v);
    for (const auto& [key, a] : state.tensors) {
      const Shape shape(a.shape().begin(), a.shape().end());
      bool exact = true;
      for (const double v : a) {
        const auto f = static_cast<float>(v);
        exact = exact && (static_cast<double>(f) == v || (std::isnan(v) && std::isnan(f)));
      }
      if (exact) {
        narrowed.emplace_back(a.begin(), a.end());
        raw.push_back({prefix + key, "F32", shape, narrowed.back().data(), a.size() * 4});
      } else {
        raw.push_back({prefix + key, "F64", shape, a.data(), a.size() * 8});
      }
    }
  };
  optim::StateDict opt_state, sched_state;
  if (ckpt.optimizer) {
    opt_state = ckpt.optimizer->state_dict(optimizer_names(*ckpt.model, *ckpt.optimizer));
    add_state("optimizer.", opt_state);
  }
  if (ckpt.scheduler) {
    sched_state = ckpt.scheduler->state_dict();
    add_state("scheduler.", sched_state);
  }
  meta["rng.default"] = default_generator().get_state();
  for (const auto& [name, gen] : ckpt.generators) {
    if (!gen) throw ValueError(std::string(op) + ": generator '" + name + "' is null");
    if (name == "default") {
      throw ValueError(std::string(op) + ": the name 'default' is the global generator's");
    }
    meta["rng." + name] = gen->get_state();
  }
  if (ckpt.loader) {
    meta["loader.epoch"] = std::to_string(ckpt.loader->epoch());
    meta["loader.seed"] = std::to_string(ckpt.loader->options().seed);
  }
  for (const auto& [key, value] : ckpt.metadata) meta["user." + key] = value;

  uLong crc = ::crc32(0, Z_NULL, 0);
  for (const auto& t : raw) {
    const auto* p = static_cast<const Bytef*>(t.data);
    for (std::size_t left = t.nbytes; left > 0;) {
      const auto piece = static_cast<uInt>(std::min<std::size_t>(left, std::size_t{1} << 30));
      crc = ::crc32(crc, p, piece);
      p += piece;
      left -= piece;
    }
  }
  meta["xgrad.crc32"] = hex32(static_cast<std::uint32_t>(crc));
  detail::write_raw(op, raw, path, meta);
}

template <class T>
void load_checkpoint(Checkpoint<T>& ckpt, const std::string& path) {
  constexpr const char* op = "xgrad::io::load_checkpoint";
  if (!ckpt.model) throw ValueError(std::string(op) + ": the checkpoint has no model");
  detail::LoadedFile file = detail::read_raw(op, path);
  const auto& meta = file.metadata;
  const auto get = [&](const std::string& key) -> const std::string* {
    const auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  const auto require = [&](const std::string& key, const std::string& why) -> const std::string& {
    const std::string* v = get(key);
    if (!v) fail(op, path, "the file has no __metadata__ \"" + key + "\"" + why);
    return *v;
  };
  const std::string& format = require("xgrad.format", ": it is no xgrad checkpoint");
  if (format != kFormat) {
    fail(op, path,
         "the checkpoint format is \"" + format + "\"; this xgrad reads \"" + kFormat + "\"");
  }
  const std::string& recorded = require("xgrad.crc32", "");
  if (recorded != hex32(file.data_crc32)) {
    fail(op, path,
         "the data section's CRC-32 is " + hex32(file.data_crc32) + " but the header records " +
             recorded + " (__metadata__ \"xgrad.crc32\"): the file is damaged");
  }
  const auto integer = [&](const std::string& key, std::int64_t lo) {
    const std::string& text = require(key, "");
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < lo) {
      fail(op, path,
           "__metadata__ \"" + key + "\" is \"" + text +
               "\", not an integer >= " + std::to_string(lo));
    }
    return v;
  };
  const std::int64_t epoch = integer("xgrad.epoch", std::numeric_limits<std::int64_t>::min());
  const std::int64_t step = integer("xgrad.step", std::numeric_limits<std::int64_t>::min());

  // The model: names and shapes exactly, values in T.
  const auto params = ckpt.model->state_dict();
  std::map<std::string, const detail::LoadedTensor*> model_entries;
  std::map<std::string, const detail::LoadedTensor*> opt_entries, sched_entries;
  for (const auto& t : file.tensors) {
    if (starts_with(t.name, "model.")) {
      model_entries.emplace(t.name.substr(6), &t);
    } else if (starts_with(t.name, "optimizer.")) {
      opt_entries.emplace(t.name.substr(10), &t);
    } else if (starts_with(t.name, "scheduler.")) {
      sched_entries.emplace(t.name.substr(10), &t);
    } else {
      fail(op, path, "tensor '" + t.name + "' belongs to no part of a checkpoint");
    }
  }
  std::vector<std::string> problems;
  std::vector<Array<T>> values;
  for (const auto& [name, t] : params) {
    const auto it = model_entries.find(name);
    if (it == model_entries.end()) {
      problems.push_back("parameter '" + name + "' with shape " + shape_str(t.shape()) +
                         " is missing from the file");
      continue;
    }
    const Array<double>& v = it->second->value;
    const Shape shape(v.shape().begin(), v.shape().end());
    if (shape != t.shape()) {
      problems.push_back("parameter '" + name + "' has shape " + shape_str(t.shape()) +
                         " in the model but " + shape_str(shape) + " in the file");
      continue;
    }
    Array<T> out = Array<T>::from_shape(shape);
    for (std::size_t k = 0; k < v.size(); ++k) {
      out.data()[k] = static_cast<T>(v.data()[k]);
      if (std::isinf(out.data()[k]) && std::isfinite(v.data()[k])) {
        fail(op, path,
             "parameter '" + name + "' holds " + num(v.data()[k]) + " at element " +
                 std::to_string(k) + ", beyond the range of float");
      }
    }
    values.push_back(std::move(out));
  }
  std::set<std::string> wanted;
  for (const auto& [name, t] : params) wanted.insert(name);
  for (const auto& [name, t] : model_entries) {
    if (!wanted.count(name)) {
      const Shape shape(t->value.shape().begin(), t->value.shape().end());
      problems.push_back("the file's parameter '" + name + "' with shape " + shape_str(shape) +
                         " matches no parameter of the model");
    }
  }
  if (!problems.empty()) {
    std::string msg;
    for (std::size_t i = 0; i < problems.size() && i < 8; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > 8) msg += "; and " + std::to_string(problems.size() - 8) + " more";
    fail(op, path, msg);
  }

  // Optimiser and scheduler states from their tensors and "<part>.<number>" metadata.
  const auto state_of = [&](const std::string& part,
                            const std::map<std::string, const detail::LoadedTensor*>& tensors) {
    optim::StateDict state;
    state.type = require(part + ".type", ": it was saved without a " + part);
    const std::string prefix = part + ".";
    for (const auto& [key, text] : meta) {
      if (!starts_with(key, prefix) || key == part + ".type") continue;
      double v = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size()) {
        fail(op, path, "__metadata__ \"" + key + "\" is \"" + text + "\", not a number");
      }
      state.scalars[key.substr(prefix.size())] = v;
    }
    for (const auto& [key, t] : tensors) state.tensors[key] = t->value;
    return state;
  };
  optim::StateDict opt_state, sched_state;
  std::vector<std::string> opt_names;
  if (ckpt.optimizer) {
    opt_state = state_of("optimizer", opt_entries);
    opt_names = optimizer_names(*ckpt.model, *ckpt.optimizer);
  }
  if (ckpt.scheduler) sched_state = state_of("scheduler", sched_entries);

  // Generators, staged in copies so that a bad state changes none of them.
  std::vector<std::pair<Generator*, Generator>> generators;
  const auto stage_generator = [&](const std::string& name, Generator* target) {
    Generator g;
    const std::string& state = require("rng." + name, ": it was saved without that generator");
    try {
      g.set_state(state);
    } catch (const ValueError&) {
      fail(op, path, "__metadata__ \"rng." + name + "\" is not a generator state");
    }
    generators.emplace_back(target, g);
  };
  stage_generator("default", &default_generator());
  for (const auto& [name, gen] : ckpt.generators) {
    if (!gen) throw ValueError(std::string(op) + ": generator '" + name + "' is null");
    stage_generator(name, gen);
  }
  std::int64_t loader_epoch = 0;
  if (ckpt.loader) {
    loader_epoch = integer("loader.epoch", 0);
    const std::string& seed = require("loader.seed", ": it was saved without a loader");
    if (seed != std::to_string(ckpt.loader->options().seed)) {
      fail(op, path,
           "the loader was saved with seed " + seed + " but this one has seed " +
               std::to_string(ckpt.loader->options().seed) +
               ": its shuffle order would not continue");
    }
  }

  // Everything checked: the changes that can fail first, then the rest.
  optim::StateDict opt_backup;
  if (ckpt.optimizer) {
    opt_backup = ckpt.optimizer->state_dict(opt_names);
    try {
      ckpt.optimizer->load_state_dict(opt_state, opt_names);
    } catch (const IoError& e) {
      fail(op, path, e.what());
    }
  }
  if (ckpt.scheduler) {
    try {
      ckpt.scheduler->load_state_dict(sched_state);
    } catch (const IoError& e) {
      if (ckpt.optimizer) ckpt.optimizer->load_state_dict(opt_backup, opt_names);
      fail(op, path, e.what());
    }
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor<T> handle = params[i].second;  // shares the module's value
    Array<T>& dst = handle.mutable_value();
    if (values[i].size()) std::copy(values[i].begin(), values[i].end(), dst.data());
  }
  for (auto& [target, g] : generators) *target = g;
  if (ckpt.loader) ckpt.loader->set_epoch(static_cast<std::uint64_t>(loader_epoch));
  ckpt.epoch = epoch;
  ckpt.step = step;
  ckpt.metadata.clear();
  for (const auto& [key, value] : meta) {
    if (starts_with(key, "user.")) ckpt.metadata[key.substr(5)] = value;
  }
}

template void save_checkpoint<float>(const Checkpoint<float>&, const std::string&);
template void save_checkpoint<double>(const Checkpoint<double>&, const std::string&);
template void load_checkpoint<float>(Checkpoint<float>&, const std::string&);
template void load_checkpoint<double>(Checkpoint<double>&, const std::string&);

}  // namespace xgrad::io
