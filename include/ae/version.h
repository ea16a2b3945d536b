/*
 * The version of libae, aetrain and aeserve: this line is the one source
 * (the Makefile reads it for ae.pc and the man pages).
 */
#ifndef AE_VERSION_H
#define AE_VERSION_H

#define AE_VERSION "0.9.0"

#endif
