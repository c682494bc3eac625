/* transfer/src/internal.h — shared by the transfer sources; not installed. */
#ifndef SPRIG_TRANSFER_INTERNAL_H
#define SPRIG_TRANSFER_INTERNAL_H

#include "sprig/transfer.h"

#endif /* SPRIG_TRANSFER_INTERNAL_H */
