/* Writes hdf5_outside.h5: datasets whose data the file asks to read from elsewhere, which
 * read_hdf5 refuses: "elink", an external link to catvnoncat_tiny.h5:/train_set_y, and "raw", a
 * float64 [4] dataset with external raw storage in hdf5_outside.bin (never written).
 * How to build and run it: tests/data/README.md. */
#include <hdf5.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s out.h5\n", argv[0]);
    return 2;
  }
  hid_t file = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  int bad = H5Lcreate_external("catvnoncat_tiny.h5", "/train_set_y", file, "elink", H5P_DEFAULT,
                               H5P_DEFAULT) < 0;
  const hsize_t dims[1] = {4};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  bad |= H5Pset_external(dcpl, "hdf5_outside.bin", 0, 4 * sizeof(double)) < 0;
  hid_t ds = H5Dcreate2(file, "raw", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  bad |= ds < 0;
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  bad |= H5Fclose(file) < 0;
  return bad;
}
