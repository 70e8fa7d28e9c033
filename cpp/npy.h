// A minimal reader for NumPy .npy files (format versions 1-3, C order, little-endian), so the
// loader can take the same input arrays the Python side writes with numpy.save. No TensorRT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct NpyArray
{
    std::string descr;           // NumPy dtype string, e.g. "<i8", "<f4", "|b1"
    std::vector<int64_t> shape;  // empty for a scalar
    std::vector<char> data;      // raw little-endian elements, C order

    int64_t count() const;       // number of elements
    size_t itemsize() const;     // bytes per element, from descr
};

// Throws std::runtime_error with the path and the reason on anything it cannot read.
NpyArray readNpy(std::string const& path);
