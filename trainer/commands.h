/*
 * The aetrain subcommands, each `aetrain NAME ...` with argv[0] = NAME;
 * each returns the process's exit status.
 */
#ifndef TRAINER_COMMANDS_H
#define TRAINER_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_export_onnx(int argc, char **argv);
int cmd_patches(int argc, char **argv);
int cmd_flag(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_import_mnist_json(int argc, char **argv);

#endif
