#include "npy.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace
{
std::string field(std::string const& header, std::string const& key, std::string const& path)
{
    auto pos = header.find("'" + key + "'");
    if (pos == std::string::npos)
        throw std::runtime_error(path + ": .npy header has no '" + key + "'");
    pos = header.find(':', pos);
    auto start = header.find_first_not_of(' ', pos + 1);
    if (header[start] == '(')
        return header.substr(start, header.find(')', start) - start + 1);
    if (header[start] == '\'')
        return header.substr(start + 1, header.find('\'', start + 1) - start - 1);
    return header.substr(start, header.find_first_of(",}", start) - start);
}

std::vector<int64_t> parseShape(std::string const& tuple)
{
    std::vector<int64_t> shape;
    std::string number;
    for (char c : tuple)
    {
        if (c >= '0' && c <= '9')
            number += c;
        else if (!number.empty())
        {
            shape.push_back(std::stoll(number));
            number.clear();
        }
    }
    return shape;
}
} // namespace

int64_t NpyArray::count() const
{
    int64_t n = 1;
    for (auto d : shape)
        n *= d;
    return n;
}

size_t NpyArray::itemsize() const
{
    return static_cast<size_t>(std::stoul(descr.substr(2)));
}

NpyArray readNpy(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(path + ": cannot open");
    char magic[8];
    in.read(magic, 8);
    if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        throw std::runtime_error(path + ": not a .npy file");
    uint32_t headerLen = 0;
    unsigned char len[4] = {0, 0, 0, 0};
    in.read(reinterpret_cast<char*>(len), magic[6] == 1 ? 2 : 4);
    headerLen = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
    std::string header(headerLen, ' ');
    in.read(header.data(), headerLen);
    NpyArray array;
    array.descr = field(header, "descr", path);
    if (field(header, "fortran_order", path) != "False")
        throw std::runtime_error(path + ": Fortran-ordered arrays are not supported");
    if (array.descr.size() < 3 || array.descr[0] == '>')
        throw std::runtime_error(path + ": unsupported dtype " + array.descr);
    array.shape = parseShape(field(header, "shape", path));
    array.data.resize(static_cast<size_t>(array.count()) * array.itemsize());
    in.read(array.data.data(), static_cast<std::streamsize>(array.data.size()));
    if (!in)
        throw std::runtime_error(path + ": file ends before its data does");
    return array;
}
