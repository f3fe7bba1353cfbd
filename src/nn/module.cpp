#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

#include <xgrad/nn/module.hpp>

namespace xgrad::nn {

template <class T>
void Module<T>::check_name(const char* op, const std::string& name) const {
  for (const auto* list : {&parameters_, &buffers_}) {
    for (const auto& [existing, _] : *list) {
      if (existing == name) {
        throw ValueError(std::string("xgrad::nn::Module::") + op + ": '" + name +
                         "' is already registered in " + describe());
      }
    }
  }
}

template <class T>
Tensor<T>& Module<T>::register_parameter(std::string name, Tensor<T> parameter) {
  check_name("register_parameter", name);
  parameter.requires_grad_();
  parameters_.emplace_back(std::move(name), std::move(parameter));
  return parameters_.back().second;
}

template <class T>
Tensor<T>& Module<T>::register_buffer(std::string name, Tensor<T> buffer) {
  check_name("register_buffer", name);
  if (!buffer.defined()) {
    throw ValueError("xgrad::nn::Module::register_buffer: '" + name + "' is undefined in " +
                     describe());
  }
  buffers_.emplace_back(std::move(name), buffer.detach());
  return buffers_.back().second;
}

template <class T>
void Module<T>::check_child(const std::string& name, bool non_null) const {
  if (!non_null) {
    throw ValueError("xgrad::nn::Module::register_module: '" + name + "' is a null module in " +
                     describe());
  }
  for (const auto& [existing, _] : children_) {
    if (existing == name) {
      throw ValueError("xgrad::nn::Module::register_module: '" + name +
                       "' is already registered in " + describe());
    }
  }
}

template <class T>
std::string Module<T>::describe() const {
  const char* mangled = typeid(*this).name();
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  const std::string name = status == 0 && demangled ? demangled.get() : mangled;
  // The namespaces say nothing about the module: keep what follows the last "::" that is not
  // inside template arguments ("(anonymous namespace)::Net<float>" -> "Net<float>").
  std::size_t start = 0;
  int depth = 0;
  for (std::size_t i = 0; i + 1 < name.size(); ++i) {
    if (name[i] == '<') ++depth;
    if (name[i] == '>') --depth;
    if (depth == 0 && name[i] == ':' && name[i + 1] == ':') start = i + 2;
  }
  return name.substr(start);
}

template <class T>
void Module<T>::collect(const std::string& prefix,
                        std::vector<std::pair<std::string, Tensor<T>>>& out, bool buffers) const {
  for (const auto& [name, p] : buffers ? buffers_ : parameters_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out, buffers);
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>>> Module<T>::named_parameters() const {
  std::vector<std::pair<std::string, Tensor<T>>> out;
  collect("", out, false);
  return out;
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>>> Module<T>::named_buffers() const {
  std::vector<std::pair<std::string, Tensor<T>>> out;
  collect("", out, true);
  return out;
}

template <class T>
std::vector<Tensor<T>> Module<T>::buffers() const {
  std::vector<Tensor<T>> out;
  for (auto& [_, b] : named_buffers()) out.push_back(b);
  return out;
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>>> Module<T>::state_dict() const {
  auto out = named_parameters();
  for (auto& named : named_buffers()) out.push_back(std::move(named));
  return out;
}

template <class T>
std::vector<Tensor<T>> Module<T>::parameters() const {
  std::vector<Tensor<T>> out;
  for (auto& [_, p] : named_parameters()) out.push_back(p);
  return out;
}

template <class T>
std::size_t Module<T>::num_parameters() const {
  std::size_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

template <class T>
void Module<T>::zero_grad(bool set_to_none) {
  for (auto& p : parameters()) {
    if (set_to_none) {
      p.clear_grad();
    } else {
      p.zero_grad();
    }
  }
}

template <class T>
void Module<T>::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

template <class T>
void Module<T>::print(std::string& out, const std::string& name, int depth) const {
  const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  out += indent;
  if (!name.empty()) {
    out += '(';
    out += name;
    out += "): ";
  }
  out += describe();
  if (children_.empty()) {
    out += "\n";
    return;
  }
  out += " (\n";
  for (const auto& [child_name, child] : children_) child->print(out, child_name, depth + 1);
  out += indent;
  out += ")\n";
}

template <class T>
std::string Module<T>::summary() const {
  std::string out;
  print(out, "", 0);
  // Thousands separators make parameter counts readable at a glance (32,785).
  const std::string digits = std::to_string(num_parameters());
  out += "Trainable parameters: ";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  out += '\n';
  return out;
}

template class Module<float>;
template class Module<double>;

}  // namespace xgrad::nn
