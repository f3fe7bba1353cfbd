/* Writes catvnoncat_tiny.h5: the layout of the course file train_catvnoncat.h5 (same dataset
 * names and dtypes) at a tiny size, plus a group for the nested-path and scalar cases.
 * How to build and run it: tests/data/README.md. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>

static int write(hid_t loc, const char* name, hid_t file_type, hid_t mem_type, int rank,
                 const hsize_t* dims, const void* data) {
  hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(ds);
  H5Sclose(space);
  return rc < 0;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s out.h5\n", argv[0]);
    return 2;
  }
  hid_t file = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  int bad = 0;

  /* train_set_x: uint8 (4, 2, 2, 3), element i holds (7 * i) % 256. */
  uint8_t x[48];
  for (int i = 0; i < 48; ++i) x[i] = (uint8_t)((7 * i) % 256);
  const hsize_t xdims[4] = {4, 2, 2, 3};
  bad |= write(file, "train_set_x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, xdims, x);

  /* train_set_y: int64 (4,), as the course file stores its 0/1 labels. */
  const int64_t y[4] = {0, 1, 1, 0};
  const hsize_t ydims[1] = {4};
  bad |= write(file, "train_set_y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, ydims, y);

  /* list_classes: fixed-length byte strings |S7, as in the course file. */
  hid_t s7 = H5Tcopy(H5T_C_S1);
  H5Tset_size(s7, 7);
  H5Tset_strpad(s7, H5T_STR_NULLPAD);
  const char classes[2][7] = {{'n', 'o', 'n', '-', 'c', 'a', 't'}, {'c', 'a', 't', 0, 0, 0, 0}};
  const hsize_t cdims[1] = {2};
  bad |= write(file, "list_classes", s7, s7, 1, cdims, classes);
  H5Tclose(s7);

  /* extra/scores: float64 (2, 3); extra/scale: a float32 scalar. */
  hid_t group = H5Gcreate2(file, "extra", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const double scores[6] = {-1.5, 0.0, 2.25, 1e-3, 100.0, -7.0};
  const hsize_t sdims[2] = {2, 3};
  bad |= write(group, "scores", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, sdims, scores);
  const float scale = 0.5f;
  bad |= write(group, "scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, NULL, &scale);
  H5Gclose(group);

  H5Fclose(file);
  return bad;
}
