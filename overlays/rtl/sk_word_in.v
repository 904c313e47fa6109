// sk_word_in: assembles 128 input beats into a word (two-slot buffer) and emits its non-zero pixels
`default_nettype none
`timescale 1ns / 1ps

// Input beats: 8 pixels each, pixel (h, w) in byte h*32 + w of the word, so
// beat b holds row b/4, columns (b%4)*8 .. +7, byte 0 in TDATA[7:0].
// TLAST may be set on beat 127 (end of a transfer: the flag travels with the
// word as its tag); TLAST on any other beat drops the partial word.
// Output: one winner beat per non-zero pixel (c = 0, y = row, x = column,
// idx = y*32 + x), in raster order, then an end beat carrying the tag.
// Bytes >= 0x80 (negative int8, outside the 0..127 contract) count as zero.
module sk_word_in (
    input  wire        clk,
    input  wire        rst,

    input  wire [63:0] s_axis_tdata,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    input  wire        s_axis_tlast,

    output wire [45:0] m_data,        // winner beats (push)
    output wire        m_push,
    input  wire        m_afull,

    output wire        busy
);

reg [63:0] mem [0:255];               // two words of 128 beats
reg [6:0]  wcnt_reg = 0;              // beat within the word being written
reg        wslot_reg = 1'b0, rslot_reg = 1'b0;
reg [1:0]  full_reg = 2'b00;
reg [1:0]  tag_reg = 2'b00;

assign s_axis_tready = !full_reg[wslot_reg];
wire in_take = s_axis_tvalid && s_axis_tready;

// read side
reg        ractive_reg = 1'b0;
reg [6:0]  rbeat_reg = 0;             // beat to fetch
reg        fetch1_reg = 1'b0;         // a fetched beat arrives this cycle
reg [63:0] q_reg = 0;
reg [63:0] cur_reg = 0;
reg        cur_valid_reg = 1'b0;
reg [2:0]  byte_reg = 0;
reg [6:0]  cur_beat_reg = 0;
reg [6:0]  fbeat_reg = 0;
reg        end_pending_reg = 1'b0;
reg        word_active_reg = 1'b0;     // a word is being read out (start .. end beat)
reg [45:0] m_data_reg = 0;
reg        m_push_reg = 1'b0;
assign m_data = m_data_reg;
assign m_push = m_push_reg;

// fetch a beat when the byte register is empty or on its last byte, and no fetch is in flight
wire can_fetch = ractive_reg && !fetch1_reg &&
                 (!cur_valid_reg || (byte_reg == 3'd7 && !m_afull));

always @(posedge clk) begin
    if (in_take) begin
        mem[{wslot_reg, wcnt_reg}] <= s_axis_tdata;
    end
    if (can_fetch) begin
        q_reg <= mem[{rslot_reg, rbeat_reg}];
    end
end

wire [7:0] cur_byte = cur_reg[byte_reg*8 +: 8];
wire [9:0] pix = {cur_beat_reg, byte_reg};     // y*32 + x

always @(posedge clk) begin
    m_push_reg <= 1'b0;

    // write side
    if (in_take) begin
        if (wcnt_reg == 7'd127) begin
            full_reg[wslot_reg] <= 1'b1;
            tag_reg[wslot_reg] <= s_axis_tlast;
            wslot_reg <= !wslot_reg;
            wcnt_reg <= 0;
        end else if (s_axis_tlast) begin
            wcnt_reg <= 0;                    // framing error: drop the partial word
        end else begin
            wcnt_reg <= wcnt_reg + 1'b1;
        end
    end

    // read side: start on a full slot
    if (!word_active_reg && full_reg[rslot_reg]) begin
        word_active_reg <= 1'b1;
        ractive_reg <= 1'b1;
        rbeat_reg <= 0;
    end
    fetch1_reg <= can_fetch;
    if (can_fetch) begin
        fbeat_reg <= rbeat_reg;
        if (rbeat_reg == 7'd127) begin
            ractive_reg <= 1'b0;
        end
        rbeat_reg <= rbeat_reg + 1'b1;
    end
    if (fetch1_reg) begin
        cur_reg <= q_reg;
        cur_valid_reg <= 1'b1;
        cur_beat_reg <= fbeat_reg;
        byte_reg <= 0;
        if (fbeat_reg == 7'd127) begin
            end_pending_reg <= 1'b1;
        end
    end else if (cur_valid_reg && !m_afull) begin
        if (cur_byte != 0 && !cur_byte[7]) begin
            m_push_reg <= 1'b1;
            m_data_reg <= {2'b00, 6'd0, pix, 11'd0, pix[9:5], pix[4:0], cur_byte[6:0]};
        end
        byte_reg <= byte_reg + 1'b1;
        if (byte_reg == 3'd7) begin
            cur_valid_reg <= 1'b0;
        end
    end
    // after the last pixel of the word: end beat, free the slot
    if (end_pending_reg && !cur_valid_reg && !fetch1_reg && !m_afull) begin
        m_push_reg <= 1'b1;
        m_data_reg <= {1'b1, tag_reg[rslot_reg], 44'd0};
        end_pending_reg <= 1'b0;
        word_active_reg <= 1'b0;
        full_reg[rslot_reg] <= 1'b0;
        rslot_reg <= !rslot_reg;
    end
    // (the write side's full set and the read side's clear never hit the same slot in one cycle)

    if (rst) begin
        wcnt_reg <= 0;
        wslot_reg <= 1'b0;
        rslot_reg <= 1'b0;
        full_reg <= 2'b00;
        ractive_reg <= 1'b0;
        fetch1_reg <= 1'b0;
        cur_valid_reg <= 1'b0;
        end_pending_reg <= 1'b0;
        word_active_reg <= 1'b0;
        m_push_reg <= 1'b0;
    end
end

assign busy = full_reg != 2'b00 || wcnt_reg != 0;

endmodule

`resetall
