# GPAW build configuration used by `make dft-deps` (serial GPAW, FFTW, OpenBLAS, libxc from Debian).
# GPAW compiles its C sources as C++ (GPAW_CPP), so the compiler must be the C++ driver.
compiler = 'g++'
mpi = False
fftw = True
scalapack = False
libraries = ['xc', 'openblas', 'fftw3']
