// SmallVector<T, N>: a vector of trivially copyable T that keeps up to N elements inside itself
// and goes to the heap only past that. Shapes and strides are this (tensor.h): nearly every tensor
// has at most 6 dims, and an op on a small tensor used to spend a third of its time allocating
// and freeing the std::vectors that held them (docs/performance.md, the 1-element add's profile).
// It has the part of std::vector's interface the code uses, and converts to and from
// std::vector<T> for the interfaces that take one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace minipipe {

template <typename T, size_t N>
class SmallVector {
  static_assert(std::is_trivially_copyable_v<T>, "SmallVector holds trivially copyable elements only");

 public:
  using value_type = T;
  using size_type = size_t;
  using difference_type = std::ptrdiff_t;
  using reference = T&;
  using const_reference = const T&;
  using pointer = T*;
  using const_pointer = const T*;
  using iterator = T*;
  using const_iterator = const T*;
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  SmallVector() = default;
  explicit SmallVector(size_t n, const T& value = T()) { assign(n, value); }
  SmallVector(std::initializer_list<T> values) { assign(values.begin(), values.end()); }
  template <typename It, typename = typename std::iterator_traits<It>::iterator_category>
  SmallVector(It first, It last) {
    assign(first, last);
  }
  SmallVector(const std::vector<T>& v) { assign(v.begin(), v.end()); }  // NOLINT: implicit on purpose
  SmallVector(const SmallVector& o) { assign(o.begin(), o.end()); }
  SmallVector(SmallVector&& o) noexcept { take(o); }
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  SmallVector& operator=(std::initializer_list<T> values) {
    assign(values.begin(), values.end());
    return *this;
  }
  ~SmallVector() { release(); }

  operator std::vector<T>() const { return std::vector<T>(begin(), end()); }  // NOLINT: implicit on purpose

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& at(size_t i) {
    check(i);
    return data_[i];
  }
  const T& at(size_t i) const {
    check(i);
    return data_[i];
  }
  T& front() { return data_[0]; }
  const T& front() const { return data_[0]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }
  iterator begin() { return data_; }
  iterator end() { return data_ + size_; }
  const_iterator begin() const { return data_; }
  const_iterator end() const { return data_ + size_; }
  const_iterator cbegin() const { return data_; }
  const_iterator cend() const { return data_ + size_; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  void reserve(size_t n) {
    if (n <= cap_) return;
    T* fresh = static_cast<T*>(std::malloc(n * sizeof(T)));
    if (!fresh) throw std::bad_alloc();
    if (size_) std::memcpy(fresh, data_, size_ * sizeof(T));
    if (data_ != inline_) std::free(data_);
    data_ = fresh;
    cap_ = n;
  }
  void clear() { size_ = 0; }
  void resize(size_t n, const T& value = T()) {
    const T v = value;  // value may live in this vector, which reserve may free
    reserve(n);
    for (size_t i = size_; i < n; ++i) data_[i] = v;
    size_ = n;
  }
  void assign(size_t n, const T& value) {
    const T v = value;
    size_ = 0;
    resize(n, v);
  }
  template <typename It, typename = typename std::iterator_traits<It>::iterator_category>
  void assign(It first, It last) {
    const size_t n = static_cast<size_t>(std::distance(first, last));
    size_ = 0;
    reserve(n);
    T* out = data_;
    for (; first != last; ++first) *out++ = *first;  // a few elements: a loop, not a memmove call
    size_ = n;
  }
  void push_back(const T& value) {
    if (size_ == cap_) grow_for(value);
    else data_[size_++] = value;
  }
  template <typename... A>
  T& emplace_back(A&&... args) {
    push_back(T(std::forward<A>(args)...));
    return back();
  }
  void pop_back() { --size_; }
  iterator insert(const_iterator pos, const T& value) {
    const T copy = value;  // value may live in this vector
    const size_t at = static_cast<size_t>(pos - data_);
    if (size_ + 1 > cap_) reserve(2 * cap_);
    std::memmove(data_ + at + 1, data_ + at, (size_ - at) * sizeof(T));
    data_[at] = copy;
    ++size_;
    return data_ + at;
  }
  template <typename It, typename = typename std::iterator_traits<It>::iterator_category>
  iterator insert(const_iterator pos, It first, It last) {
    const size_t at = static_cast<size_t>(pos - data_);
    const SmallVector tmp(first, last);  // the range may live in this vector
    if (size_ + tmp.size() > cap_) reserve(std::max(size_ + tmp.size(), 2 * cap_));
    std::memmove(data_ + at + tmp.size(), data_ + at, (size_ - at) * sizeof(T));
    std::copy(tmp.begin(), tmp.end(), data_ + at);
    size_ += tmp.size();
    return data_ + at;
  }
  iterator insert(const_iterator pos, std::initializer_list<T> values) {
    return insert(pos, values.begin(), values.end());
  }
  iterator erase(const_iterator pos) { return erase(pos, pos + 1); }
  iterator erase(const_iterator first, const_iterator last) {
    const size_t a = static_cast<size_t>(first - data_), b = static_cast<size_t>(last - data_);
    std::memmove(data_ + a, data_ + b, (size_ - b) * sizeof(T));
    size_ -= b - a;
    return data_ + a;
  }
  void swap(SmallVector& o) noexcept {
    SmallVector t(std::move(o));
    o = std::move(*this);
    *this = std::move(t);
  }

  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const SmallVector& a, const SmallVector& b) { return !(a == b); }
  friend bool operator<(const SmallVector& a, const SmallVector& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  void check(size_t i) const {
    if (i >= size_) throw std::out_of_range("SmallVector::at: index out of range");
  }
  void grow_for(const T& value) {
    const T copy = value;  // value may live in this vector
    reserve(2 * cap_);
    data_[size_++] = copy;
  }
  void release() {
    if (data_ != inline_) std::free(data_);
    data_ = inline_;
    size_ = 0;
    cap_ = N;
  }
  void take(SmallVector& o) {
    if (o.data_ == o.inline_) {
      for (size_t i = 0; i < o.size_; ++i) inline_[i] = o.inline_[i];
      data_ = inline_;
    } else {
      data_ = o.data_;
      o.data_ = o.inline_;
    }
    size_ = o.size_;
    cap_ = std::max(N, o.cap_);
    o.size_ = 0;
    o.cap_ = N;
  }

  T* data_ = inline_;
  size_t size_ = 0, cap_ = N;
  T inline_[N];
};

}  // namespace minipipe
