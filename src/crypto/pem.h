/* Backend-neutral PEM scanning (pem.c). Not installed. */
#ifndef SN_PEM_H
#define SN_PEM_H

#include "core.h"

typedef struct sn_pem_block {
    const char *label; /* points into the input, not NUL-terminated */
    int label_len;
    const char *begin; /* first byte of the BEGIN line */
    const char *end;   /* one past the END line */
    int line;          /* 1-based line of the BEGIN line */
    bool encrypted;    /* legacy "Proc-Type: 4,ENCRYPTED" header */
} sn_pem_block;

typedef struct sn_pem_reader {
    const char *data;
    size_t len;
    size_t pos;
    int line; /* line number of the line starting at pos */
} sn_pem_reader;

/* Finds the next block. 1: found; 0: no more blocks; -1: malformed (message recorded with
 * sn_fail: truncation, mismatched END, bytes outside base64, an empty block). */
int sn_pem_next(sn_pem_reader *r, sn_pem_block *b);
/* The block's label is exactly `label` / ends with `suffix`. */
bool sn_pem_label_is(const sn_pem_block *b, const char *label);
bool sn_pem_label_ends(const sn_pem_block *b, const char *suffix);
/* CERTIFICATE, X509 CERTIFICATE or TRUSTED CERTIFICATE. */
bool sn_pem_is_cert_block(const sn_pem_block *b);
/* Records (and returns SN_ERR_FILE_CORRUPT) the message for input without a block of the wanted
 * kind: "holds a certificate, not a private key", "binary DER", "no PEM data found". */
sn_err sn_pem_no_block(const char *data, size_t len, int blocks, const sn_pem_block *first,
                       const char *wanted, const char *begin_line);

/* Picks the key block a key load uses: the first private key; with public_only, the first key of
 * either kind (a public key is also taken, for a clear message, when no private key is there).
 * *is_private tells which kind it is. Refuses encrypted private keys and a public key where a
 * private one is wanted. SN_ERR_FILE_CORRUPT with a message naming the block or line. */
sn_err sn_pem_find_key(const char *pem, size_t len, bool public_only, sn_pem_block *key,
                       bool *is_private);

#endif
